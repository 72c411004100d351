"""Chapter 10's generated sentences: every number in them comes from the table they describe."""

from __future__ import annotations

import pandas as pd

from mbt import paper


def _gains() -> pd.DataFrame:
    rows = []
    for pair, steps, qa, ar, own in (("toy-sft10", 10, (0.0, 0.0, 0.0), (-0.2, -0.3, -0.1), (-0.25, -0.35, -0.15)),
                                     ("toy-sft60", 60, (0.3, 0.2, 0.4), (0.02, -0.05, 0.09), (-0.2, -0.3, -0.1)),
                                     ("toy", 300, (0.65, 0.58, 0.72), (0.1, 0.02, 0.18), (-0.16, -0.25, -0.07))):
        for fmt, (gain, low, high), base in (("qa", qa, 0.0), ("arithmetic", ar, 0.49), ("own", own, 0.32)):
            rows.append(dict(pair=pair, sft_steps=float(steps), format=fmt, base=base, sft=base + gain, gain=gain,
                             ci_low=low, ci_high=high, n=200))
    return pd.DataFrame(rows).sample(frac=1.0, random_state=0)  # any order: the ladder's order is restored


def test_ladder_sentences_name_the_first_rung_with_the_format_and_every_change():
    text = paper.knowledge_sentences(_gains())
    assert "appears by `toy-sft60` (60 SFT steps)" in text and "+0.300 [+0.200, +0.400]" in text
    assert "the strongest, `toy`, reaches 0.650, and half of that (0.325) by `toy-sft60` (60 SFT steps) (0.300)" \
        not in text  # 0.300 is less than half of 0.650
    assert "the strongest, `toy`, reaches 0.650, and half of that (0.325) by `toy` (300 SFT steps) (0.650)" in text
    assert text.index("`toy-sft10` (10 SFT steps) −0.200") < text.index("`toy` (300 SFT steps) +0.100")
    assert "The loss is clear (interval below 0) from `toy-sft10` (10 SFT steps) on." in text
    none = _gains().assign(ci_low=lambda f: f["ci_low"].where(f["format"] != "qa", -0.1))
    assert "No SFT model answers the Q/A format" in paper.knowledge_sentences(none)
    assert paper.knowledge_sentences(pd.DataFrame()) == "No knowledge-or-format scores were recorded."


def test_swap_sentences_report_the_largest_change_and_the_whole_donor():
    rows = [dict(score_name="format", direction="sft→base", kind="donor", head="donor", segment=-1, blocks=(),
                 diff=0.6, diff_ci_low=0.5, diff_ci_high=0.7)]
    for seg, d in enumerate((0.0, 0.0, 0.05, 0.0, 0.4)):
        rows.append(dict(score_name="format", direction="sft→base", kind="swap", head="receiver", segment=seg,
                         blocks=(2 * seg + 1, 2 * seg + 2), diff=d, diff_ci_low=d - 0.08, diff_ci_high=d + 0.08))
    for seg in range(5):
        rows.append(dict(score_name="knowledge", direction="sft→base", kind="swap", head="receiver", segment=seg,
                         blocks=(seg + 1,), diff=0.0, diff_ci_low=0.0, diff_ci_high=0.0))
    text = paper.swap_knowledge_sentences(pd.DataFrame(rows))
    assert "**The Q/A format** — sft→base: segment 5 (blocks 9, 10) changes it most, +0.400 [+0.320, +0.480]" in text
    assert "1 of 5 segments change it clearly" in text and "the whole donor: +0.600 [+0.500, +0.700]" in text
    assert "**The arithmetic alone** — sft→base: no single segment changes it on any problem" in text


def test_the_mask_sentence_says_what_the_winner_learns():
    contrasts = pd.DataFrame([
        dict(mask="01100", against="11111", score="accuracy", mask_mean=0.7, against_mean=0.6, diff=0.1,
             ci_low=0.02, ci_high=0.18, n=3),
        dict(mask="01100", against="11111", score="arithmetic", mask_mean=0.52, against_mean=0.52, diff=0.0,
             ci_low=-0.05, ci_high=0.05, n=3),
        dict(mask="01100", against="00000", score="accuracy", mask_mean=0.7, against_mean=0.0, diff=0.7,
             ci_low=0.6, ci_high=0.8, n=3),
        dict(mask="01100", against="00000", score="arithmetic", mask_mean=0.52, against_mean=0.5, diff=0.02,
             ci_low=-0.04, ci_high=0.08, n=3)])
    text = paper.mask_knowledge_sentence(contrasts)
    assert "`01100` (Q/A exact match 0.700, arithmetic alone 0.520" in text
    assert "against `11111` it gains +0.100 [+0.020, +0.180] in the Q/A format" in text
    assert "against the untuned Base it gains +0.700 [+0.600, +0.800]" in text
    assert "mostly the format" in text
    knowledge = contrasts.assign(ci_low=[0, 0, -0.1, 0.85], ci_high=[0, 0, 0.1, 0.95])
    assert "mostly the knowledge" in paper.mask_knowledge_sentence(knowledge)
    assert "no arithmetic-alone scores" in paper.mask_knowledge_sentence(pd.DataFrame())


def test_the_premise_is_generated_from_the_stored_table():
    rows = [dict(pair="toy", model=m, format=f, score=s, ci_low=s - 0.05, ci_high=s + 0.05, n=200, empty=e)
            for m, f, s, e in (("base", "qa", 0.0, 1.0), ("base", "own", 0.32, 0.0), ("base", "arithmetic", 0.49, 0.0),
                               ("sft", "qa", 0.63, 0.0), ("sft", "own", 0.155, 0.0), ("sft", "arithmetic", 0.625, 0.0))]
    rows.append(dict(pair="toy-sft10", model="base", format="qa", score=0.9, ci_low=0.8, ci_high=1.0, n=200, empty=0))
    text = paper.premise_markdown(pd.DataFrame(rows), pair="toy")
    assert "the Base answers 0.000 [-0.050, 0.050] of 200 held-out problems in the Q/A format" in text
    assert "empty in 100 % of them" in text and "it solves 0.320 [0.270, 0.370]" in text
    assert "Q/A format 0.630 [0.580, 0.680]" in text and "not about what the Base knows" in text
    assert "chapter 10" in paper.premise_markdown(None, pair="toy")
    assert "no row for `olmo2-1b`" in paper.premise_markdown(pd.DataFrame(rows), pair="olmo2-1b")
