"""Zip files for the apps tests: a directory zipped as an app, and hostile
zips (a path that climbs out, an absolute path, a symbolic link, a device
file, a zip bomb). Usage: app_zips.py MODE OUT [DIR] — MODE is one of
dir, traversal, absolute, symlink, device, bomb."""
import stat
import sys
import zipfile
from pathlib import Path


def entry(z, name, data=b"", mode=None):
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    if mode is not None:
        info.create_system = 3  # Unix: external_attr carries st_mode
        info.external_attr = mode << 16
    z.writestr(info, data)


def main():
    mode, out = sys.argv[1], sys.argv[2]
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        if mode == "dir":
            root = Path(sys.argv[3])
            top = root.name
            for p in sorted(root.rglob("*")):
                if p.is_file():
                    z.write(p, f"{top}/{p.relative_to(root)}")
        elif mode == "traversal":
            entry(z, "index.html", b"<p>hi</p>")
            entry(z, "../../escaped-by-traversal.txt", b"pwned")
        elif mode == "absolute":
            entry(z, "index.html", b"<p>hi</p>")
            entry(z, "/tmp/escaped-absolute.txt", b"pwned")
        elif mode == "symlink":
            entry(z, "index.html", b"<p>hi</p>")
            entry(z, "passwd", b"/etc/passwd", stat.S_IFLNK | 0o777)
        elif mode == "device":
            entry(z, "index.html", b"<p>hi</p>")
            entry(z, "null", b"", stat.S_IFCHR | 0o666)
        elif mode == "bomb":
            # 100 MiB of zeros deflate to about 100 KiB: under the size
            # limit by its header, a bomb by what it inflates to.
            entry(z, "index.html", b"<p>hi</p>")
            info = zipfile.ZipInfo("zeros.bin")
            info.compress_type = zipfile.ZIP_DEFLATED
            with z.open(info, "w", force_zip64=True) as f:
                block = bytes(1 << 20)
                for _ in range(100):
                    f.write(block)
        else:
            raise SystemExit(f"unknown mode {mode}")


main()
