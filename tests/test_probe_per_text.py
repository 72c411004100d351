"""Per-text logit-lens values (mbt.probe.lens_per_text) and the lens of any vector (lens_log_probs)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import TEXTS

import mbt
from mbt import probe, trace

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model(save_pair):
    base, sft = save_pair("olmo2", base_layers=4)
    return mbt.load_pair(base=str(base), sft=str(sft), progress=False).base


@pytest.mark.parametrize("metric", probe.METRICS)
def test_per_text_values_average_to_the_lens_tables_value(model, metric):
    table = probe.logit_lens(model, TEXTS, layers=range(5), n_bootstrap=0, progress=False)
    per = probe.lens_per_text(model, TEXTS, metric=metric, layers=range(5), batch_size=3)
    assert per.shape == (len(TEXTS), 5)
    want = table[table["metric"] == metric].set_index("layer")["value"]
    np.testing.assert_allclose(np.nanmean(per, axis=0), want.to_numpy(), rtol=1e-6, atol=1e-9)  # batch 3 vs 8
    with pytest.raises(ValueError, match="metric must be one of"):
        probe.lens_per_text(model, TEXTS, metric="loss")


def test_the_lens_of_a_vector_is_the_final_norm_and_head_once(model):
    module = trace.unwrap(model)
    h = torch.randn(3, module.config.hidden_size)
    with torch.no_grad():
        want = torch.log_softmax(module.lm_head(module.model.norm(h)).float(), -1)
        got = probe.lens_log_probs(model, h)
    torch.testing.assert_close(got, want)
