import numpy as np
import pytest
import torch

from butd.models.language import QuestionEncoder, WordEmbedding


def test_padding_row_is_zero_and_gets_no_gradient() -> None:
    torch.manual_seed(0)
    emb = WordEmbedding(10, 6)
    assert emb.emb.weight.shape == (11, 6)
    assert emb.padding_idx == 10
    assert (emb.emb.weight[10] == 0).all()
    q = torch.tensor([[10, 10, 3, 4], [10, 1, 2, 3]])
    out = emb(q)
    assert out.shape == (2, 4, 6)
    assert (out[:, 0] == 0).all()
    out.sum().backward()
    grad = emb.emb.weight.grad
    assert (grad[10] == 0).all()
    assert (grad[3] != 0).all()


def test_init_from_glove_matrix() -> None:
    rng = np.random.default_rng(0)
    glove = rng.standard_normal((10, 6)).astype(np.float32)
    glove[2] = 0.0  # a word missing from GloVe stays zero
    emb = WordEmbedding(10, 6)
    emb.init_from(glove)
    torch.testing.assert_close(emb.emb.weight[:10].detach(), torch.from_numpy(glove))
    assert (emb.emb.weight[10] == 0).all()
    emb.init_from(torch.ones(10, 6))
    assert (emb.emb.weight[:10] == 1).all() and (emb.emb.weight[10] == 0).all()
    with pytest.raises(ValueError, match="shape"):
        emb.init_from(np.zeros((11, 6)))


def test_question_encoder_returns_last_step() -> None:
    torch.manual_seed(1)
    enc = QuestionEncoder(6, 5)
    w = torch.randn(3, 4, 6)
    out = enc(w)
    assert out.shape == (3, 5)
    full, _ = enc.rnn(w)
    torch.testing.assert_close(out, full[:, -1])
