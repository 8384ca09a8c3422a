#!/usr/bin/env python3
"""Writes formats/tensorflow/tensorflow.proto: the subset of TensorFlow's own message definitions
that DLTensorFlow reads (SavedModel, MetaGraphDef, GraphDef, FunctionDef, AttrValue, TensorProto,
the object graph and the tensor-bundle index entries), printed from the descriptors compiled into
the installed tensorflow wheel (2.21), so every field number and type is TensorFlow's.

Messages outside the kept set are left out, and so are the fields that refer to them: protobuf-c
skips such fields as unknown when decoding. Run with the project venv, then scripts/gen-protos:

    .venv/bin/python scripts/tensorflow-protos.py && scripts/gen-protos
"""
import os
import sys

from google.protobuf import descriptor as D
from tensorflow.core.framework import graph_pb2, types_pb2  # noqa: F401
from tensorflow.core.protobuf import (meta_graph_pb2, saved_model_pb2, saved_object_graph_pb2,
                                      tensor_bundle_pb2, trackable_object_graph_pb2)

ROOTS = [
    saved_model_pb2.SavedModel.DESCRIPTOR,
    tensor_bundle_pb2.BundleHeaderProto.DESCRIPTOR,
    tensor_bundle_pb2.BundleEntryProto.DESCRIPTOR,
    trackable_object_graph_pb2.TrackableObjectGraph.DESCRIPTOR,
]
# Reachable messages we never read; fields of these types are dropped.
SKIP = {
    "tensorflow.MetaGraphDef.MetaInfoDef", "tensorflow.SaverDef", "tensorflow.CollectionDef",
    "tensorflow.AssetFileDef", "tensorflow.GraphDebugInfo", "tensorflow.StructuredValue",
    "tensorflow.FunctionSpec", "tensorflow.ResourceHandleProto",
    "tensorflow.VariantTensorDataProto", "tensorflow.FullTypeDef", "google.protobuf.Any",
    "tensorflow.OpDef.AttrDef", "tensorflow.OpDeprecation", "tensorflow.FunctionDef.ArgAttrs",
    "tensorflow.GradientDef", "tensorflow.RegisteredGradient", "tensorflow.SavedAsset",
    "tensorflow.SavedResource", "tensorflow.SaveableObject", "tensorflow.NodeDef.ExperimentalDebugInfo",
    "tensorflow.TensorInfo.CooSparse", "tensorflow.TensorInfo.CompositeTensor",
    "tensorflow.TrackableObjectGraph.TrackableObject.SlotVariableReference",
    "tensorflow.RegisteredSaver", "tensorflow.TrackableObjectGraph.TrackableObject.SerializedTensor.Dummy",
    "google.protobuf.BoolValue",
}

SCALARS = {
    D.FieldDescriptor.TYPE_DOUBLE: "double", D.FieldDescriptor.TYPE_FLOAT: "float",
    D.FieldDescriptor.TYPE_INT64: "int64", D.FieldDescriptor.TYPE_UINT64: "uint64",
    D.FieldDescriptor.TYPE_INT32: "int32", D.FieldDescriptor.TYPE_FIXED64: "fixed64",
    D.FieldDescriptor.TYPE_FIXED32: "fixed32", D.FieldDescriptor.TYPE_BOOL: "bool",
    D.FieldDescriptor.TYPE_STRING: "string", D.FieldDescriptor.TYPE_BYTES: "bytes",
    D.FieldDescriptor.TYPE_UINT32: "uint32", D.FieldDescriptor.TYPE_SFIXED32: "sfixed32",
    D.FieldDescriptor.TYPE_SFIXED64: "sfixed64", D.FieldDescriptor.TYPE_SINT32: "sint32",
    D.FieldDescriptor.TYPE_SINT64: "sint64",
}


def skipped(m):
    while m is not None:
        if m.full_name in SKIP:
            return True
        m = m.containing_type
    return False


def kept_type(f):
    return f.message_type is None or not skipped(f.message_type)


def is_map(f):
    return f.message_type is not None and f.message_type.GetOptions().map_entry


def type_name(f):
    if f.message_type is not None:
        return "." + f.message_type.full_name
    if f.enum_type is not None:
        return "." + f.enum_type.full_name
    return SCALARS[f.type]


def field_line(f, indent):
    if is_map(f):
        k, v = f.message_type.fields_by_name["key"], f.message_type.fields_by_name["value"]
        return f"{indent}map<{type_name(k)}, {type_name(v)}> {f.name} = {f.number};"
    label = "repeated " if f.is_repeated else ""
    return f"{indent}{label}{type_name(f)} {f.name} = {f.number};"


def map_value_kept(f):
    return kept_type(f.message_type.fields_by_name["value"]) if is_map(f) else kept_type(f)


def enum_text(e, indent):
    lines = [f"{indent}enum {e.name} {{"]
    if e.GetOptions().allow_alias:
        lines.append(f"{indent}  option allow_alias = true;")
    lines += [f"{indent}  {v.name} = {v.number};" for v in e.values]
    return lines + [f"{indent}}}"]


def message_text(m, indent=""):
    lines = [f"{indent}message {m.name} {{"]
    inner = indent + "  "
    for e in m.enum_types:
        lines += enum_text(e, inner)
    for n in m.nested_types:
        if n.GetOptions().map_entry or n.full_name in SKIP:
            continue
        lines += message_text(n, inner)
    done = set()
    for f in m.fields:
        if not map_value_kept(f) or f.name in done:
            continue
        o = f.containing_oneof
        if o is not None and not o.name.startswith("_"):
            members = [g for g in o.fields if map_value_kept(g)]
            lines.append(f"{inner}oneof {o.name} {{")
            lines += [field_line(g, inner + "  ") for g in members]
            lines.append(f"{inner}}}")
            done |= {g.name for g in members}
        else:
            lines.append(field_line(f, inner))
            done.add(f.name)
    return lines + [f"{indent}}}"]


def top_level(d):
    while d.containing_type is not None:
        d = d.containing_type
    return d


def closure():
    messages, enums, todo = {}, {}, list(ROOTS)
    while todo:
        m = todo.pop()
        top = top_level(m)
        if top.full_name in messages or top.full_name in SKIP:
            continue
        messages[top.full_name] = top
        stack = [top]
        while stack:
            cur = stack.pop()
            stack += [n for n in cur.nested_types if n.full_name not in SKIP]
            for f in cur.fields:
                if f.message_type is not None and not skipped(f.message_type):
                    todo.append(f.message_type)
                if f.enum_type is not None and f.enum_type.containing_type is None:
                    enums[f.enum_type.full_name] = f.enum_type
    return messages, enums


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    messages, enums = closure()
    out = [
        "// Generated by scripts/tensorflow-protos.py from the descriptors in tensorflow 2.21:",
        "// the subset of TensorFlow's messages DLTensorFlow reads. Field numbers and types are",
        "// TensorFlow's (Apache-2.0); messages we do not read are left out. Do not edit by hand.",
        'syntax = "proto3";',
        "",
        "package tensorflow;",
        "",
    ]
    for name in sorted(enums):
        out += enum_text(enums[name], "") + [""]
    for name in sorted(messages):
        out += message_text(messages[name]) + [""]
    path = os.path.join(root, "formats", "tensorflow", "tensorflow.proto")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        fh.write("\n".join(out))
    print(f"tensorflow-protos: {len(messages)} messages, {len(enums)} enums -> {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
