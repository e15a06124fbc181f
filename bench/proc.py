"""What /proc says of a server process: its CPU seconds and its resident memory."""

import os
from collections.abc import Iterator

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int | str) -> float:
    """User plus system CPU seconds the process (all its threads; ``"self"`` for this one) has
    used so far."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    # Fields after the command name, which is in parentheses and may hold spaces.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    """The process's resident set size (VmRSS)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def _socket_inodes(pid: int) -> set[str]:
    """The inodes of the sockets process ``pid`` holds (none once it is gone)."""
    inodes = set()
    try:
        for fd in os.scandir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(fd.path)
            except OSError:  # closed meanwhile
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:  # the process is gone
        pass
    return inodes


def _tcp_sockets(port: int, state: str) -> Iterator[str]:
    """The inodes of the TCP sockets on local ``port`` in ``state`` ("0A" listening, "01"
    established), IPv4 and IPv6."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for row in f.readlines()[1:]:
                fields = row.split()
                if fields[3] == state and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    yield fields[9]


def listening(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds a socket listening on TCP ``port`` (several may, with
    SO_REUSEPORT)."""
    inodes = _socket_inodes(pid)
    return any(inode in inodes for inode in _tcp_sockets(port, "0A"))


def established(pid: int, port: int) -> int:
    """The connections to local TCP ``port`` that process ``pid`` serves."""
    inodes = _socket_inodes(pid)
    return sum(inode in inodes for inode in _tcp_sockets(port, "01"))
