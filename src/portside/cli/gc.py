"""``portside gc``: purge now what is past its retention (admin key)."""

from __future__ import annotations

from portside.cli.common import KeyOpt, UrlOpt, client_from, emit, exit_with, fit_table


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def gc_command(url: str = UrlOpt, api_key: str = KeyOpt) -> None:
    """Purge execution output, finished tasks, deleted records, idempotency records and expired
    sandboxes past their retention (PORTSIDE_RETENTION_*), and give the space back."""
    from portside import PortsideError

    try:
        with client_from(url, api_key) as c:
            result = c.admin.gc()
    except PortsideError as exc:
        raise exit_with(exc) from None
    rows = [(kind, p.rows, _size(p.bytes)) for kind, p in result.purged.items()]
    store = result.store

    def human() -> None:
        from portside.cli.common import console

        console.print(fit_table(("kind", "rows", "bytes"), rows))
        console.print(
            f"store {_size(store.bytes_before)} -> {_size(store.bytes_after)} "
            f"in {result.duration_seconds:.1f}s"
            + (f"; errors: {', '.join(f'{k}: {v}' for k, v in result.errors.items())}" if result.errors else "")
        )

    emit(result, human)
