"""``manage.py runmodules`` in a process of its own, for tests that run several processes."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class ModulesProcess:
    """``manage.py runmodules --pid <process_id>``; each start logs to a file of its own."""

    def __init__(self, workdir: Path, env: dict[str, str], process_id: str, *args: str) -> None:
        self.workdir, self.env, self.process_id, self.args = workdir, env, process_id, args
        self.process: subprocess.Popen[bytes] | None = None
        self.runs = 0

    def start(self) -> "ModulesProcess":
        self.runs += 1
        self.log_path = self.workdir / f"runmodules-{self.process_id}-{self.runs}.log"
        command = [sys.executable, "manage.py", "runmodules", "--pid", self.process_id]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [*command, *self.args], cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        return self

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """Kill it if it still runs."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
