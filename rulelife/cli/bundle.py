"""``rulelife bundle ...``: build, publish, inspect, roll back, pin and unpin bundles."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rulelife.cli._common import (
    ActorOption,
    JsonOption,
    RulelifeGroup,
    console,
    deliver_events,
    exit_with,
    print_json,
    print_publish,
    publish_summary,
    table,
    workspace,
)

if TYPE_CHECKING:  # annotations only: commands import what they run, so --help stays fast
    from rulelife.serving.bundle import BundleStore

app = typer.Typer(cls=RulelifeGroup, help="Build, publish, inspect and roll back rule bundles.", no_args_is_help=True)


def _store(ctx: typer.Context) -> BundleStore:
    from rulelife.serving.bundle import BundleStore

    return BundleStore.for_workspace(workspace(ctx))


def _print_summary(summary: dict, as_json: bool, note: str = "") -> None:
    if as_json:
        print_json(summary)
        return
    if note:
        console.print(note)
    for key, value in summary.items():
        console.print(f"  {key}: {value}", highlight=False)


@app.command("build")
def build(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Write a new immutable bundle of the active rules, the shadow ones and the safety lexicon (CURRENT is not moved)."""
    from rulelife.serving import publish

    ws = workspace(ctx)
    bundle, new = publish.build_bundle(ws)
    note = f"built bundle {bundle.number}" if new else f"unchanged: bundle {bundle.number} already holds these rules"
    _print_summary({**bundle.summary(), "new": new}, as_json, note)


@app.command("publish")
def publish_command(ctx: typer.Context, actor: ActorOption = "cli",
                    reason: Annotated[str, typer.Option("--reason", help="Why (recorded in the history).")] = "",
                    as_json: JsonOption = False) -> None:
    """Build a bundle of the active rules if needed and point CURRENT at it (a pinned bundle stays: see unpin)."""
    from rulelife.serving import publish

    ws = workspace(ctx)
    result = publish.publish_active(ws, actor=actor, reason=reason)
    note = f"published bundle {result.bundle.number}" if result.published else (
        f"bundle {result.bundle.number} is already CURRENT; nothing to publish")
    summary = {**result.bundle.summary(), **publish_summary(result)}
    if as_json or result.pin is None:
        _print_summary(summary, as_json, note)
    else:
        print_publish(result)
    exit_with(deliver_events(ws))


@app.command("show")
def show(
    ctx: typer.Context,
    number: Annotated[int | None, typer.Argument(help="Bundle number (default: CURRENT).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Metadata and rules of a bundle."""
    store = _store(ctx)
    bundle = store.current() if number is None else store.load(number)
    pointer = store.pointer()
    pin = store.pinned()
    summary = {**bundle.summary(), "current": bool(pointer and pointer["number"] == bundle.number),
               "pinned": bool(pin and pin.number == bundle.number), "shadow_rules": sum(r.shadow for r in bundle.rules)}
    if as_json:
        print_json({**summary, "rule_versions": [{"id": r.id, "version": r.version, "shadow": r.shadow}
                                                 for r in bundle.rules]})
        return
    _print_summary(summary, False)
    # A shadow rule is matched but never answers: say so beside each rule.
    console.print(table(None, ["rule", "version", "serving", "intent", "locales", "patterns"],
                        [[r.id, r.version, "shadow" if r.shadow else "active", r.intent, ",".join(r.locales),
                          len(r.patterns)] for r in bundle.rules]))


@app.command("list")
def list_bundles(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Every bundle: when it was last put in service, by whom and why; CURRENT and the pin are marked."""
    store = _store(ctx)
    pointer = store.pointer()
    pin = store.pinned()
    last = {}
    for entry in store.history():
        if entry.get("action") in ("publish", "rollback"):
            last[entry.get("number")] = entry
    rows = []
    for number in store.numbers():
        header = store.peek_header(store.path_of(number)) or {}
        entry = last.get(number, {})
        rows.append({"number": number, "created_at": header.get("created_at"), "rules": header.get("rule_count"),
                     "current": bool(pointer and pointer["number"] == number),
                     "pinned": bool(pin and pin.number == number), "action": entry.get("action"),
                     "at": entry.get("at"), "actor": entry.get("actor"), "reason": entry.get("reason")})
    if as_json:
        print_json(rows)
        return
    console.print(table(None, ["number", "created", "rules", "current", "last served", "by", "why"],
                        [[r["number"], r["created_at"], r["rules"],
                          ("*" if r["current"] else "") + (" pinned" if r["pinned"] else ""),
                          f"{r['action']} {r['at']}" if r["action"] else "", r["actor"], r["reason"]] for r in rows]))


@app.command("diff")
def diff(
    ctx: typer.Context,
    a: Annotated[int, typer.Argument(help="Older bundle number.")],
    b: Annotated[int, typer.Argument(help="Newer bundle number.")],
    as_json: JsonOption = False,
) -> None:
    """Rules added, removed and changed between bundles A and B, their patterns, and the registry change
    behind each."""
    from rulelife.serving.rollback import explain_diff

    entries = explain_diff(workspace(ctx), a, b)
    if as_json:
        by = {kind: [e for e in entries if e.change == kind] for kind in ("added", "removed", "changed")}
        print_json({"a": a, "b": b, "added": [e.rule_id for e in by["added"]],
                    "removed": [e.rule_id for e in by["removed"]],
                    "changed": [{"rule_id": e.rule_id, "from": e.versions[0], "to": e.versions[1]}
                                for e in by["changed"]],
                    "rules": [e.to_dict() for e in entries]})
        return
    if not entries:
        console.print(f"bundles {a} and {b} hold the same rule versions")
    signs = {"added": "+", "removed": "-", "changed": "~"}
    for e in entries:
        versions = e.versions[1] if e.change == "added" else e.versions[0] if e.change == "removed" else \
            f"{e.versions[0]} -> {e.versions[1]}"
        console.print(f"{signs[e.change]} {e.rule_id} {versions}  (now {e.state or 'not in the registry'})",
                      highlight=False)
        for pattern in e.patterns_added:
            console.print(f"    + {pattern!r}", highlight=False)
        for pattern in e.patterns_removed:
            console.print(f"    - {pattern!r}", highlight=False)
        if e.why:
            console.print(f"    why: {e.why}", highlight=False)


ReasonOption = Annotated[str, typer.Option("--reason", help="Why (recorded in the history, and with --force in "
                                                            "the audit of each rule it serves anyway).")]


@app.command("rollback")
def rollback(
    ctx: typer.Context,
    number: Annotated[int | None, typer.Argument(help="Bundle to serve (default: the one published before CURRENT).")] = None,
    actor: ActorOption = "cli",
    reason: ReasonOption = "",
    force: Annotated[bool, typer.Option("--force", help="Serve the bundle even though it holds rules the registry "
                                                        "took out of traffic (needs --reason).")] = False,
    as_json: JsonOption = False,
) -> None:
    """Point CURRENT back at an earlier bundle and pin it; refused if that bundle holds a rule the registry
    has disabled, expired or retired. Running classifiers pick it up on refresh; publishing (the nightly's
    too) leaves a pinned bundle in place until `rulelife bundle unpin`."""
    from rulelife.serving.rollback import rollback as run_rollback

    ws = workspace(ctx)
    result = run_rollback(ws, number, actor=actor, reason=reason, force=force)
    if as_json:
        print_json(result.to_dict())
    else:
        _print_summary(result.bundle.summary(), False, f"CURRENT now points to bundle {result.bundle.number}, "
                                                       "pinned until `rulelife bundle unpin`")
        for blocked in result.forced:
            console.print(f"  served anyway (--force, audited): {blocked.line}", highlight=False)
    exit_with(deliver_events(ws))


@app.command("unpin")
def unpin(ctx: typer.Context, actor: ActorOption = "cli", reason: ReasonOption = "",
          as_json: JsonOption = False) -> None:
    """Lift a rollback's pin and publish the registry's rules again."""
    from rulelife.monitoring.nightly import close_pin_ticket, sinks_for
    from rulelife.serving.rollback import unpin as run_unpin
    from rulelife.store import Store

    ws = workspace(ctx)
    store = Store.from_workspace(ws)
    pin, published = run_unpin(ws, actor=actor, reason=reason, store=store)
    close_pin_ticket(store, actor, list(sinks_for(ws)))
    if as_json:
        print_json({"unpinned": pin.to_dict() if pin else None, **publish_summary(published)})
    else:
        if pin is None:
            console.print("no bundle was pinned")
        elif pin.number < 0:
            console.print(f"lifted a damaged pin: {pin.reason}", highlight=False)
        else:
            console.print(f"lifted the pin on bundle {pin.number} (set by {pin.actor}: {pin.reason})", highlight=False)
        print_publish(published)
        if not published.published:
            console.print(f"bundle {published.bundle.number} is CURRENT and holds the registry's rules")
    exit_with(deliver_events(ws))


@app.command("keygen")
def keygen(
    out: Annotated[Path, typer.Option("--out", help="Folder for the new key pair (created if missing).")],
    as_json: JsonOption = False,
) -> None:
    """Make an Ed25519 key pair for signing bundles: the private key (mode 0600) for the publisher, the public key for runtimes."""
    from rulelife.serving.signing import fingerprint, generate_keys, load_public_key

    private, public = generate_keys(out)
    summary = {"private_key": str(private), "public_key": str(public),
               "fingerprint": fingerprint(load_public_key(public))}
    if as_json:
        print_json(summary)
        return
    console.print(f"wrote {private} (keep it secret: only the publisher reads it) and {public}", highlight=False)
    console.print(f"next: set bundle_signing_key = \"{private}\" in rulelife.toml, then `rulelife bundle publish`; "
                  f"give runtimes RuleClassifier(..., public_key=\"{public}\") or RULELIFE_BUNDLE_PUBLIC_KEY",
                  highlight=False)
