"""The seccomp filter every bwrap sandbox runs under (``bwrap --seccomp FD``).

Built once per server with libseccomp (through ``pyseccomp``, a ctypes binding of ``libseccomp.so.2``) and
exported as classic BPF. Default action: allow. Denied calls fail with ``EPERM`` (``clone3`` with ``ENOSYS``,
so that glibc falls back to ``clone``, whose flags a filter can see): programs see an ordinary error and
degrade instead of being killed. bwrap installs the filter on the sandbox's pid 1 and on the agent, so every
process of the sandbox inherits it and none can remove it.

What is denied and why (on top of the capability drop and namespaces, which already stop most of these):

* kernel attack surface reachable without privileges: ``bpf``, ``perf_event_open``, ``io_uring_*``,
  ``userfaultfd``, the key-ring calls (``keyctl``, ``add_key``, ``request_key``);
* host-level operations: ``kexec_*``, module loading, ``reboot``, ``swapon``/``swapoff``, ``acct``,
  ``quotactl``, ``syslog``, ``settimeofday``/``clock_settime``/``adjtimex``, ``personality``;
* mount and namespace manipulation: ``mount``, ``umount2``, ``pivot_root``, ``chroot``, the new mount API
  (``open_tree``, ``move_mount``, ``fsopen``, ``fsconfig``, ``fsmount``, ``fspick``, ``mount_setattr``),
  ``unshare``, ``setns``, and ``clone`` with any ``CLONE_NEW*`` flag;
* handle-based file access that can bypass the mount view: ``open_by_handle_at``, ``name_to_handle_at``;
* wedging the sandbox: ``ptrace``, ``process_vm_readv``/``process_vm_writev`` aimed at pid 1 (bwrap's init,
  which the kernel cannot protect because bwrap marks it dumpable), ``pidfd_getfd`` (fd theft);
  the agent protects itself with ``PR_SET_DUMPABLE 0``;
* terminal injection: ``ioctl(TIOCSTI)`` and ``ioctl(TIOCLINUX)``.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import tempfile

log = logging.getLogger(__name__)

DENIED_SYSCALLS: tuple[str, ...] = (
    "bpf",
    "perf_event_open",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "userfaultfd",
    "keyctl",
    "add_key",
    "request_key",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "quotactl",
    "syslog",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "personality",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "unshare",
    "setns",
    "open_by_handle_at",
    "name_to_handle_at",
    "pidfd_getfd",
    "lookup_dcookie",
    "vhangup",
)
"""Always ``EPERM``."""

CLONE_NEW_FLAGS = {
    "CLONE_NEWNS": 0x00020000,
    "CLONE_NEWCGROUP": 0x02000000,
    "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000,
    "CLONE_NEWUSER": 0x10000000,
    "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
    "CLONE_NEWTIME": 0x00000080,
}
"""``clone`` with any of these flags is ``EPERM``; ``clone3`` (flags in memory, invisible to BPF) is ``ENOSYS``."""

PID1_SYSCALLS = ("ptrace", "process_vm_readv", "process_vm_writev")
"""``EPERM`` when aimed at pid 1 (the pid argument: arg 1 of ptrace, arg 0 of the others)."""

TIOCSTI = 0x5412
TIOCLINUX = 0x541C


def _build() -> bytes:
    import pyseccomp as sc  # ctypes over libseccomp.so.2

    eperm = sc.ERRNO(errno.EPERM)
    flt = sc.SyscallFilter(sc.ALLOW)
    for name in DENIED_SYSCALLS:
        try:
            flt.add_rule(eperm, name)
        except (OSError, ValueError, RuntimeError):  # unknown on this architecture
            log.debug("seccomp: no syscall %s here", name)
    for flag in CLONE_NEW_FLAGS.values():
        flt.add_rule(eperm, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    flt.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    flt.add_rule(eperm, "ptrace", sc.Arg(1, sc.EQ, 1))
    for name in PID1_SYSCALLS[1:]:
        flt.add_rule(eperm, name, sc.Arg(0, sc.EQ, 1))
    for request in (TIOCSTI, TIOCLINUX):
        flt.add_rule(eperm, "ioctl", sc.Arg(1, sc.MASKED_EQ, 0xFFFFFFFF, request))
    with tempfile.TemporaryFile() as fh:
        flt.export_bpf(fh)
        fh.seek(0)
        return fh.read()


@functools.cache
def filter_program() -> bytes | None:
    """The compiled BPF program, or None (after one warning) when libseccomp is unavailable."""
    try:
        return _build()
    except (ImportError, OSError, RuntimeError, ValueError) as exc:
        log.warning("sandbox seccomp filter unavailable (%s): sandboxes run without one", exc)
        return None


def filter_fd() -> int | None:
    """A pipe read end holding the program, for ``bwrap --seccomp``; the caller passes it on and closes it."""
    program = filter_program()
    if program is None:
        return None
    rfd, wfd = os.pipe()
    try:
        os.write(wfd, program)  # a few hundred bytes: fits the pipe buffer
    finally:
        os.close(wfd)
    return rfd
