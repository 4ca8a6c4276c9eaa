from minilm.tokenizer import ByteTokenizer, WordTokenizer, tokenizer_from_json


def test_word_tokenizer_round_trip_and_unknown_words():
    tok = WordTokenizer.build(["the capital of france is paris .", "the movie was good ."])
    text = "the capital of france is paris ."
    assert tok.decode(tok.encode(text)) == text
    assert tok.encode("the zebra")[1] == tok.unk_id
    assert tok.decode(tok.encode("the zebra")) == "the <unk>"
    again = tokenizer_from_json(tok.to_json())
    assert again.words == tok.words and again.vocab_size == tok.vocab_size


def test_byte_tokenizer_round_trips_any_utf8():
    tok = ByteTokenizer()
    text = "naïve café — 東京 🙂"
    ids = tok.encode(text)
    assert max(ids) < 256 and tok.decode(ids) == text


def test_pieces_show_each_tokens_text():
    words = WordTokenizer.build(["the keeper lit the lamp"])
    assert words.pieces(words.encode("the lamp went")) == ["the", "lamp", "<unk>"]
    assert ByteTokenizer().pieces(ByteTokenizer().encode("a é")) == ["a", " ", "\\xc3", "\\xa9"]  # é is two bytes
