"""`kubectl loom`: Loom's resources as Argo Rollouts' plugin shows rollouts.

  kubectl loom status [KIND/NAME] [-A] [-w] [-o json|yaml]
  kubectl loom lineage KIND/NAME [-w] [-o json|yaml]
  kubectl loom promote|abort INFERENCESERVICE
  kubectl loom retrain|suspend|resume TRAININGJOB

Every command takes --kubeconfig, --context and -n/--namespace as kubectl does."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from loom.api.kinds import KINDS, Kind
from loom.drivers.kube_http import ApiError, ConfigError
from loom.kubectl import render
from loom.kubectl.client import LoomApi, NotFound
from loom.kubectl.lineage import NotTraceable, Obj, trace, tree
from loom.kubectl.requests import REQUESTS
from loom.kubectl.resources import BadReference, expect, parse
from loom.kubectl.status import Row, rows
from loom.kubectl.watch import Frame, watch

WATCH_SECONDS = 2.0


def _now() -> datetime:
    return datetime.now(timezone.utc)


class InNamespace:
    """`lineage.Objects` over the API: the objects of one namespace, each read at most once per frame."""

    def __init__(self, api: LoomApi, namespace: str) -> None:
        self._api, self._namespace = api, namespace
        self._got: dict[tuple[str, str], Obj | None] = {}

    def get(self, kind: Kind, name: str) -> Obj | None:
        if (kind.kind, name) not in self._got:
            self._got[(kind.kind, name)] = self._api.find(kind, self._namespace, name)
        return self._got[(kind.kind, name)]

    def list(self, kind: Kind) -> list[Obj]:
        return [o for o in self._api.list(kind, self._namespace)]


def _status_frame(api: LoomApi, args: argparse.Namespace) -> Frame:
    if args.ref:
        kind, name = parse(args.ref)
        found = [dict(api.get(kind, api.namespace, name), kind=kind.kind)]
    else:
        namespace = None if args.all_namespaces else api.namespace
        found = [o for kind in KINDS for o in api.list(kind, namespace)]
    listed: list[Row] = rows(found)
    data = {"items": [r.to_dict() for r in listed]}
    if args.output:
        return data, render.document(data, args.output)
    if not listed:
        where = "any namespace" if args.all_namespaces else f"namespace {api.namespace}"
        return data, f"No Loom resources found in {where}.\n"
    now = _now()
    text = render.status_table(listed, now, namespaces=bool(args.all_namespaces))
    if args.ref:
        text += "\n" + render.conditions_table(listed[0], now)
    return data, text


def _lineage_frame(api: LoomApi, args: argparse.Namespace) -> Frame:
    kind, name = parse(args.ref)
    found = trace(kind, api.get(kind, api.namespace, name), InNamespace(api, api.namespace))
    data = found.to_dict()
    return data, render.document(data, args.output) if args.output else render.tree(tree(found))


def _show(frame: Callable[[LoomApi, argparse.Namespace], Frame]) -> Callable[[LoomApi, argparse.Namespace], int]:
    def run(api: LoomApi, args: argparse.Namespace) -> int:
        if not args.watch:
            sys.stdout.write(frame(api, args)[1])
            return 0
        try:
            watch(lambda: frame(api, args), args.interval, sys.stdout)
        except KeyboardInterrupt:
            pass
        return 0
    return run


def _request(api: LoomApi, args: argparse.Namespace) -> int:
    request = REQUESTS[args.command]
    name = expect(args.name, request.kind)
    api.patch(request.kind, api.namespace, name, request.patch(_now()))
    print(f"{request.kind.singular}/{name}: {request.said}")
    return 0


def _options(defaults: bool) -> argparse.ArgumentParser:
    """kubectl's connection flags, accepted before and after the command; a command's own copy sets
    nothing unless given (SUPPRESS), so a flag before the command is not overwritten by its default."""
    options = argparse.ArgumentParser(add_help=False)
    default: Any = None if defaults else argparse.SUPPRESS
    options.add_argument("--kubeconfig", default=default, help="kubeconfig file(s) ($KUBECONFIG, ~/.kube/config)")
    options.add_argument("--context", default=default, help="kubeconfig context (its current one)")
    options.add_argument("-n", "--namespace", default=default, help="namespace (the context's, else default)")
    return options


def _shown(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("-o", "--output", choices=("json", "yaml"), help="print the data structured")
    sub.add_argument("-w", "--watch", action="store_true", help="draw again whenever it changes (Ctrl-C ends)")
    sub.add_argument("--interval", type=float, default=WATCH_SECONDS, help="seconds between reads with --watch")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kubectl loom", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter, parents=[_options(True)])
    sub = p.add_subparsers(dest="command", required=True)
    options = _options(False)

    status = sub.add_parser("status", parents=[options], help="phase, Ready and progress of Loom resources")
    status.add_argument("ref", nargs="?", help="one resource, KIND/NAME (e.g. tj/movielens-two-tower)")
    status.add_argument("-A", "--all-namespaces", action="store_true", help="in every namespace")
    _shown(status)
    status.set_defaults(func=_show(_status_frame))

    lineage = sub.add_parser("lineage", parents=[options],
                             help="served model -> training run -> Iceberg snapshots it read")
    lineage.add_argument("ref", help="isvc/NAME or tj/NAME")
    _shown(lineage)
    lineage.set_defaults(func=_show(_lineage_frame))

    for command, request in REQUESTS.items():
        one = sub.add_parser(command, parents=[options], help=f"{request.kind.kind}: {request.help}")
        one.add_argument("name", help=f"the {request.kind.kind} (NAME or {request.kind.short_names[0]}/NAME)")
        one.set_defaults(func=_request)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        api = LoomApi.connect(args.kubeconfig, args.context, args.namespace)
        code: int = args.func(api, args)
        return code
    except (BadReference, NotFound, NotTraceable, ConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
    except ApiError as error:
        print(f"Error from server ({error.reason or error.status}): {error.message or error}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
