import numpy as np
import pandas as pd

from fusioncast.config import ModelConfig
from fusioncast.demo import DEMO_CONTRACT
from fusioncast.encoding import UNSEEN, CategoryEncoder
from fusioncast.split import TRAIN, split_by_time
from fusioncast.state import fit_vocabularies
from fusioncast.tokenize import BOS, OOV, PAD, TextTokenizer, words

C = DEMO_CONTRACT


def test_words_lowercases_and_keeps_digits():
    assert words("Street FESTIVAL in 4 days, isn't it?") == [
        "street",
        "festival",
        "in",
        "4",
        "days",
        "isn't",
        "it",
    ]


def test_vocabulary_is_fitted_on_training_text_only(demo_frame):
    frame = demo_frame.copy()
    boundaries = split_by_time(frame, C)
    later = boundaries.labels(frame[C.timestamp]) != TRAIN
    # A word that only ever appears after the training period must not enter the vocabulary.
    frame.loc[later, "note"] = "zeppelin zeppelin sighted"
    frame.loc[later, "store"] = "S99"
    encoder, tokenizers = fit_vocabularies(frame, C, boundaries, ModelConfig(min_token_count=1))
    vocabulary = tokenizers["note"].vocabulary
    assert "zeppelin" not in vocabulary and "sighted" not in vocabulary
    assert "festival" in vocabulary  # a training word
    assert "S99" not in encoder.vocabularies["store"]
    ids, offsets = tokenizers["note"].encode(["zeppelin festival"])
    assert ids.tolist() == [OOV, vocabulary.index("festival")]


def test_encode_gives_flat_ids_and_offsets_with_nulls_as_no_tokens():
    tokenizer = TextTokenizer.fit(["a b", "b c", "b"], min_count=1)
    assert tokenizer.vocabulary[:3] == ["[PAD]", "[OOV]", "[BOS]"]
    assert tokenizer.vocabulary[3] == "b"  # most frequent first
    ids, offsets = tokenizer.encode(["a b", None, pd.NA, "", "zzz c"])
    assert offsets.tolist() == [0, 2, 2, 2, 2, 4]
    assert tokenizer.decode(ids) == ["a", "b", "[OOV]", "c"]
    assert PAD not in ids and BOS not in ids


def test_a_column_encodes_as_each_of_its_texts_alone():
    """A frame's column (repeated texts, nulls, empty strings) encodes to what each text gives
    on its own, in row order, and the vocabulary counts every occurrence of a repeated text."""
    texts = ["Road works on Friday", None, "road works", "", "Road works on Friday", "new aisle"]
    column = pd.Series(texts * 50, dtype="str")
    tokenizer = TextTokenizer.fit(column, min_count=100, max_tokens_per_step=3)
    assert tokenizer.vocabulary[3:] == ["road", "works", "on"]  # 150, 150, 100; "friday" is 4th
    ids, offsets = tokenizer.encode(column)
    alone = [tokenizer.encode([text]) for text in column.tolist()]
    assert np.diff(offsets).tolist() == [len(row_ids) for row_ids, _ in alone]
    assert ids.tolist() == [i for row_ids, _ in alone for i in row_ids.tolist()]
    assert tokenizer.decode(ids[:3]) == ["road", "works", "on"]  # at most 3 tokens per step


def test_min_count_max_vocabulary_and_tokens_per_step():
    tokenizer = TextTokenizer.fit(
        ["x x x y y z"], min_count=2, max_vocabulary=4, max_tokens_per_step=5
    )
    assert tokenizer.vocabulary == ["[PAD]", "[OOV]", "[BOS]", "x"]
    ids, _ = tokenizer.encode(["x y z x x x x x"])
    assert len(ids) == 5


def test_tokenizer_json_round_trip():
    tokenizer = TextTokenizer.fit(["alpha beta", "beta gamma"], min_count=1)
    again = TextTokenizer.from_json(tokenizer.to_json())
    assert again == tokenizer


def test_category_encoder_reserves_zero_for_unseen_and_missing():
    train = pd.DataFrame({"store": ["S1", "S2", "S1"]})
    encoder = CategoryEncoder.fit(train, ("store",), np.ones(3, dtype=bool))
    new = pd.DataFrame({"store": pd.array(["S2", "S3", None, "S1"], dtype="string")})
    assert encoder.encode(new, "store").tolist() == [2, UNSEEN, UNSEEN, 1]
    assert encoder.cardinality("store") == 3
    assert encoder.count_unseen(new, "store") == 1
    assert CategoryEncoder.from_json(encoder.to_json()) == encoder
