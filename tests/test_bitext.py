"""A small run of the Bitext benchmark: real intents, the real workspace code path."""

from benchmarks.bench_bitext import SAFETY, run

INTENTS = ["cancel_order", "track_order", "recover_password", "newsletter_subscription", "check_invoice",
           "contact_human_agent", "complaint", "get_refund"]


def test_small_bitext_pipeline(shared_data):
    out = run(shared_data / "bitext_cs_intent", folds=3, intents=INTENTS, variants=("miner",),
              gates=("lower_bound",))
    assert out["meta"]["intents"] == len(INTENTS) and out["meta"]["safety_intents"] == list(SAFETY)
    (result,) = out["results"]
    assert result["candidates"] > 0 and result["promoted"] > 0
    assert result["coverage"] > 0
    assert result["agreement_model"] >= 0.95
    assert result["safety_fp_model"] == 0
