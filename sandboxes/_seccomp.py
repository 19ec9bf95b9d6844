"""A seccomp filter that forbids new user namespaces (for bwrap's ``--seccomp FD``).

Under uid separation the bubblewrap backend runs its sandbox in the host's user namespace (the harness and
candidate uids must be real, distinct uids), so bwrap's ``--disable-userns`` (which needs a user namespace of
its own) is not available. A new user namespace would hand a candidate every capability over namespaces it
makes, and with them most of the kernel's attack surface; this filter refuses them as Docker's default profile
does: ``unshare`` and ``clone`` with ``CLONE_NEWUSER`` fail with EPERM, and ``clone3`` (whose flags live in
memory a filter cannot read) fails with ENOSYS, so the C library falls back to ``clone``. System calls of
another ABI (i386, x32) fail with ENOSYS: they would bypass the numbers checked here.

The program is classic BPF over ``struct seccomp_data`` (``nr`` at 0, ``arch`` at 4, ``args[0]`` at 16,
little-endian hosts only).
"""

from __future__ import annotations

import errno
import platform
import struct

__all__ = ["userns_filter"]

CLONE_NEWUSER = 0x10000000
X32_SYSCALL_BIT = 0x40000000

# (AUDIT_ARCH, unshare, clone, clone3) per machine
_ARCHES: dict[str, tuple[int, int, int, int]] = {
    "x86_64": (0xC000003E, 272, 56, 435),
    "aarch64": (0xC00000B7, 97, 220, 435),
}

_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JGE = 0x35  # BPF_JMP | BPF_JGE | BPF_K
_JSET = 0x45  # BPF_JMP | BPF_JSET | BPF_K
_RET = 0x06  # BPF_RET | BPF_K
_ALLOW = 0x7FFF0000
_ERRNO = 0x00050000
_NR, _ARCH, _ARG0_LOW = 0, 4, 16

# An instruction: (code, k, where to go when true, when false); a label names the next instruction. Jumps go
# forward only, by label; None falls through.
_Instruction = tuple[int, int, str | None, str | None]


def _assemble(program: list[_Instruction | str]) -> bytes:
    labels, position = {}, 0
    for item in program:
        if isinstance(item, str):
            labels[item] = position
        else:
            position += 1
    code, position = [], 0
    for item in program:
        if isinstance(item, str):
            continue
        op, k, if_true, if_false = item
        jt = 0 if if_true is None else labels[if_true] - position - 1
        jf = 0 if if_false is None else labels[if_false] - position - 1
        code.append(struct.pack("<HBBI", op, jt, jf, k))
        position += 1
    return b"".join(code)


def userns_filter(machine: str | None = None) -> bytes | None:
    """The compiled filter for this machine (``platform.machine()``), or None where it has no table entry."""
    machine = machine or platform.machine()
    entry = _ARCHES.get(machine)
    if entry is None:
        return None
    arch, unshare, clone, clone3 = entry
    x32: list[_Instruction | str] = [(_JGE, X32_SYSCALL_BIT, "enosys", None)] if machine == "x86_64" else []
    return _assemble(
        [
            (_LD_W_ABS, _ARCH, None, None),
            (_JEQ, arch, None, "enosys"),
            (_LD_W_ABS, _NR, None, None),
            *x32,
            (_JEQ, clone3, "enosys", None),
            (_JEQ, unshare, "flags", None),
            (_JEQ, clone, "flags", "allow"),
            "flags",
            (_LD_W_ABS, _ARG0_LOW, None, None),
            (_JSET, CLONE_NEWUSER, "eperm", "allow"),
            "allow",
            (_RET, _ALLOW, None, None),
            "eperm",
            (_RET, _ERRNO | errno.EPERM, None, None),
            "enosys",
            (_RET, _ERRNO | errno.ENOSYS, None, None),
        ]
    )
