"""The classifiers: the reference's MLP by default, the two-stream classifier's shapes, its sum of
streams and its output rows set from answer vectors."""

import pytest
import torch

from butd.models import ModelConfig, build_model, count_parameters
from butd.models.classifier import Classifier, TwoStreamClassifier


def _two_stream() -> TwoStreamClassifier:
    torch.manual_seed(0)
    return TwoStreamClassifier(8, 5, 6, 4, activation="gated_tanh", dropout=0.5)


def test_the_default_model_keeps_the_reference_classifier():
    model = build_model(ModelConfig(), ntoken=10, v_dim=12, num_answers=7)
    assert type(model.classifier) is Classifier


def test_two_stream_shapes_and_the_logit_is_the_sum_of_the_streams():
    clf = _two_stream().eval()
    x = torch.randn(3, 8)
    logits = clf(x)
    assert logits.shape == (3, 4)
    assert clf.text_out.weight.shape == (4, 5) and clf.image_out.weight.shape == (4, 6)
    text = clf.text_out(clf.text(x))
    image = clf.image_out(clf.image(x))
    torch.testing.assert_close(logits, text + image, rtol=0, atol=0)


def test_two_stream_model_widths_follow_the_embedding_and_the_features():
    cfg = ModelConfig(classifier="two_stream", num_hid=16, emb_dim=10)
    model = build_model(cfg, ntoken=20, v_dim=12, num_answers=7)
    assert model.classifier.text_out.weight.shape == (7, 10)  # the text embedding's space
    assert model.classifier.image_out.weight.shape == (7, 12)  # the image features' space
    v, q = torch.randn(2, 3, 12), torch.randint(0, 20, (2, 5))
    assert model(v, q).shape == (2, 7)
    # every parameter outside the classifier is the reference model's
    simple = build_model(ModelConfig(num_hid=16, emb_dim=10), ntoken=20, v_dim=12, num_answers=7)
    outside = count_parameters(simple) - count_parameters(simple.classifier)
    assert count_parameters(model) - count_parameters(model.classifier) == outside
    # two weight-normed FC layers (weights, one g, biases) and two plain linear output layers
    assert count_parameters(model.classifier) == (16 * 10 + 1 + 10) + (16 * 12 + 1 + 12) + (10 * 7 + 7) + (
        12 * 7 + 7
    )


def test_output_rows_are_exactly_the_answer_vectors():
    clf = _two_stream()
    text = torch.arange(20, dtype=torch.float32).reshape(4, 5) / 10
    image = -torch.arange(24, dtype=torch.float32).reshape(4, 6) / 10
    bias_before = clf.text_out.bias.clone()
    clf.init_text_rows(text.numpy())
    clf.init_image_rows(image)
    assert torch.equal(clf.text_out.weight, text) and torch.equal(clf.image_out.weight, image)
    assert torch.equal(clf.text_out.bias, bias_before)  # the biases keep their initialisation
    with pytest.raises(
        ValueError, match=r"text stream's answer vectors have shape \(4, 6\), expected \(4, 5\)"
    ):
        clf.init_text_rows(torch.zeros(4, 6))


def test_a_two_stream_model_has_no_reference_counterpart():
    from butd.models import to_reference

    model = build_model(
        ModelConfig(classifier="two_stream", num_hid=8, emb_dim=6), ntoken=5, v_dim=4, num_answers=3
    )
    with pytest.raises(
        ValueError, match="model.classifier=two_stream model has no counterpart in the reference"
    ):
        to_reference(model)
