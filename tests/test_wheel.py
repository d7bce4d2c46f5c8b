"""The built wheel works on its own, from outside the checkout."""

from __future__ import annotations

import site
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

from conftest import ROOT, flat, pages_text


def test_wheel_installs_and_renders_outside_checkout(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(wheels), str(ROOT)], check=True, capture_output=True)
    wheel = next(wheels.glob("myelo_docs-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "myelo_docs/_assets/templates/packet.html.j2" in names
    assert "myelo_docs/_assets/fonts/AtkinsonHyperlegible-Regular.ttf" in names
    assert "myelo_docs/content/en/handout.toml" in names
    assert "myelo_docs/brands/demo/logo.svg" in names

    # A fresh venv that sees the dependencies (not our checkout) and our wheel.
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    purelib = Path(subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True).stdout.strip())
    deps = {sysconfig.get_paths()["purelib"], *site.getsitepackages()}
    (purelib / "deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(purelib), str(wheel)], check=True, capture_output=True)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run([python, "-c", "import myelo_docs; print(myelo_docs.__file__)"],
                           cwd=elsewhere, check=True, capture_output=True, text=True).stdout
    assert where.startswith(str(purelib))
    result = subprocess.run([python, "-m", "myelo_docs", "demo", "-o", "demo.pdf"],
                            cwd=elsewhere, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    texts = pages_text((elsewhere / "demo.pdf").read_bytes())
    assert "Alex Demo-Patient" in flat(texts[0])
    assert len(texts) >= 5
