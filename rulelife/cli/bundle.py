"""``rulelife bundle ...``: build, publish, inspect and roll back bundles."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rulelife.cli._common import ActorOption, JsonOption, RulelifeGroup, console, print_json, table, workspace

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
def publish_command(ctx: typer.Context, actor: ActorOption = "cli", as_json: JsonOption = False) -> None:
    """Build a bundle of the active rules if needed and point CURRENT at it."""
    from rulelife.serving import publish

    result = publish.publish_active(workspace(ctx), actor=actor)
    note = f"published bundle {result.bundle.number}" if result.published else (
        f"bundle {result.bundle.number} is already CURRENT; nothing to publish")
    _print_summary({**result.bundle.summary(), "published": result.published, "current_repaired": result.repaired},
                   as_json, note)


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
    summary = {**bundle.summary(), "current": bool(pointer and pointer["number"] == bundle.number),
               "shadow_rules": sum(r.shadow for r in bundle.rules)}
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
    """Every bundle in the store; the CURRENT one is marked."""
    store = _store(ctx)
    pointer = store.pointer()
    rows = []
    for number in store.numbers():
        header = store.peek_header(store.path_of(number)) or {}
        rows.append({"number": number, "created_at": header.get("created_at"), "rules": header.get("rule_count"),
                     "current": bool(pointer and pointer["number"] == number)})
    if as_json:
        print_json(rows)
        return
    console.print(table(None, ["number", "created", "rules", "current"],
                        [[r["number"], r["created_at"], r["rules"], "*" if r["current"] else ""] for r in rows]))


@app.command("diff")
def diff(
    ctx: typer.Context,
    a: Annotated[int, typer.Argument(help="Older bundle number.")],
    b: Annotated[int, typer.Argument(help="Newer bundle number.")],
    as_json: JsonOption = False,
) -> None:
    """Rules added, removed and changed between bundles A and B."""
    from rulelife.serving.bundle import diff_bundles

    store = _store(ctx)
    result = diff_bundles(store.load(a), store.load(b))
    if as_json:
        print_json(result.to_dict())
        return
    if result.empty:
        console.print(f"bundles {a} and {b} hold the same rule versions")
    for rule_id in result.added:
        console.print(f"+ {rule_id}", highlight=False)
    for rule_id in result.removed:
        console.print(f"- {rule_id}", highlight=False)
    for rule_id, old, new in result.changed:
        console.print(f"~ {rule_id} {old} -> {new}", highlight=False)


@app.command("rollback")
def rollback(
    ctx: typer.Context,
    number: Annotated[int | None, typer.Argument(help="Bundle to serve (default: the one published before CURRENT).")] = None,
    actor: ActorOption = "cli",
    as_json: JsonOption = False,
) -> None:
    """Point CURRENT back at an earlier bundle; running classifiers pick it up on refresh."""
    bundle = _store(ctx).rollback(number, actor=actor)
    _print_summary(bundle.summary(), as_json, f"CURRENT now points to bundle {bundle.number}")


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
