"""`vidstyle train`: placeholder until its issue lands."""

from vidstyle.errors import ConfigError


def register(sub) -> None:
    p = sub.add_parser("train", help="(not yet available)")
    p.add_argument("rest", nargs="*")
    p.set_defaults(func=_not_yet)


def _not_yet(args) -> int:
    raise ConfigError("'vidstyle train' is not available yet")
