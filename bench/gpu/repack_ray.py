"""Re-pack ray's wheel without the parts a study never loads on the GPU machine, so the wheels fit the device tool's
64 MiB: ray/jars (Ray's Java API), the dashboard's web client, rllib, serve, llm. RECORD is rewritten to match, so pip
installs the smaller wheel as it would the original."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

DROPPED = ("ray/jars/", "ray/dashboard/client/", "ray/rllib/", "ray/serve/", "ray/llm/")


def repack(wheel: Path) -> None:
    smaller = wheel.with_suffix(".tmp")
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(smaller, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            if info.filename.startswith(DROPPED):
                continue
            data = source.read(info)
            if info.filename.endswith(".dist-info/RECORD"):
                lines = data.decode().splitlines()
                data = ("\n".join(line for line in lines if not line.startswith(DROPPED)) + "\n").encode()
            target.writestr(info, data)
    before, after = wheel.stat().st_size, smaller.stat().st_size
    smaller.replace(wheel)
    print(f"{wheel.name}: {before / 2**20:.1f} MiB -> {after / 2**20:.1f} MiB")


if __name__ == "__main__":
    for path in sys.argv[1:]:
        repack(Path(path))
