#!/usr/bin/python3
"""Point <base>/current at releases/<release> atomically and prune old releases.

Used on hosts that run only an app's Celery workers (no web unit, no nginx).
Usage: pyfleet_switch_current.py BASE_DIR RELEASE KEEP. RELEASE "previous" is
the newest release older than the current one (a rollback). Prints
"changed <release>" or "ok <release>".
"""

import os
import shutil
import sys


def main():
    base, release, keep = sys.argv[1], sys.argv[2], int(sys.argv[3])
    releases_dir = os.path.join(base, "releases")
    link = os.path.join(base, "current")
    if release == "previous":
        current = os.path.basename(os.readlink(link)) if os.path.islink(link) else None
        older = sorted(n for n in os.listdir(releases_dir) if current is None or n < current)
        if not older:
            sys.exit(f"no release older than {current} to roll back to in {releases_dir}")
        release = older[-1]
    if not os.path.isdir(os.path.join(releases_dir, release)):
        sys.exit(f"release {release} does not exist in {releases_dir}")
    target = f"releases/{release}"
    changed = False
    if not (os.path.islink(link) and os.readlink(link) == target):
        tmp = os.path.join(base, f".current.{os.getpid()}")
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(target, tmp)
        os.replace(tmp, link)
        changed = True
    # Release ids are UTC stamps: sorted order is age order. Keep the newest.
    names = sorted(n for n in os.listdir(releases_dir) if os.path.isdir(os.path.join(releases_dir, n)))
    for name in names[: max(0, len(names) - keep)]:
        if name != release:
            shutil.rmtree(os.path.join(releases_dir, name))
            changed = True
    print(("changed " if changed else "ok ") + release)


if __name__ == "__main__":
    main()
