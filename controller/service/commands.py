"""`grainloop serve` and `grainloop keys create|list|revoke` (keys work before the service ever started)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from controller.service.config import ServiceSettings, SettingsError, load_settings
from controller.service.keys import Role, create_key, list_keys, revoke_key
from controller.service.state import open_state


class ServiceInputError(ValueError):
    """Bad input to a service command; one line, exit status 2."""


def _settings(args: argparse.Namespace) -> ServiceSettings:
    try:
        return load_settings(args.config)
    except SettingsError as exc:
        raise ServiceInputError(str(exc)) from None


def cmd_serve(args: argparse.Namespace) -> int:
    import logging

    from controller.service.ports import ports_in_use
    from controller.service.serve import run_service

    settings = _settings(args)
    ports = settings.listener_ports
    busy = ports_in_use(settings.bind_host, ports)
    if busy:
        taken = ", ".join(f"{ports[n]} ({n}, GRAINLOOP_{n.upper()})" for n in busy)
        raise ServiceInputError(
            f"port(s) already in use on {settings.bind_host}: {taken}; is another grainloop serve running? "
            "choose free ports in the settings file or the environment"
        )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    run_service(settings)
    return 0


def cmd_keys_create(args: argparse.Namespace) -> int:
    settings = _settings(args)
    engine = open_state(settings.resolved_state_url)
    name = args.name or f"{args.role}-key"
    try:
        key = create_key(engine, Role(args.role), name)
    except ValueError as exc:
        raise ServiceInputError(str(exc)) from None
    sys.stdout.write(key + "\n")  # the key alone on stdout, so `KEY=$(grainloop keys create …)` works
    print(f"created {args.role} key {key.split('_')[1]} ({name}); it is shown only this once", file=sys.stderr)
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    rows = list_keys(open_state(_settings(args).resolved_state_url))
    if args.json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return 0
    for r in rows:
        state = "revoked" if r["revoked_s"] else "active"
        print(f"{r['key_id']}  {r['role']:<8}  {state:<7}  {r['name']}")
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    if not revoke_key(open_state(_settings(args).resolved_state_url), args.key_id):
        raise ServiceInputError(f"no active key with id {args.key_id!r}")
    print(f"revoked {args.key_id}", file=sys.stderr)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    def config_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", type=Path, default=None, help="TOML settings (see deploy/grainloop.toml)")

    serve = sub.add_parser("serve", help="run the service: API, manager, worker, agents")
    config_arg(serve)
    serve.set_defaults(func=cmd_serve)

    keys = sub.add_parser("keys", help="API keys (work before the service starts)").add_subparsers(
        dest="action", required=True
    )
    create = keys.add_parser("create", help="make a key; prints it alone on stdout")
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    create.add_argument("--name", default=None)
    config_arg(create)
    create.set_defaults(func=cmd_keys_create)
    listing = keys.add_parser("list", help="keys without their secrets")
    listing.add_argument("--json", action="store_true")
    config_arg(listing)
    listing.set_defaults(func=cmd_keys_list)
    revoke = keys.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    config_arg(revoke)
    revoke.set_defaults(func=cmd_keys_revoke)
