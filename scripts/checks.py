"""The pass/fail bookkeeping shared by the peer-check scripts (peer_checks.py, serve_checks.py,
hf_checks.py, hf_serve_checks.py, openvino_checks.py): run one check, print "ok NAME" or "FAIL NAME: why",
count it and keep going, then one summary line and the exit code."""

passed, failed = 0, 0


def check(name, fn):
    global passed, failed
    try:
        fn()
        passed += 1
        print(f"ok   {name}", flush=True)
    except Exception as e:  # report every failure, keep going
        failed += 1
        print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)


def summary(title, extra=""):
    """Prints "TITLE: N passed, N failed" (and `extra`); returns the exit code."""
    print(f"{title}: {passed} passed, {failed} failed{extra}")
    return 1 if failed else 0
