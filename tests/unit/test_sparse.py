from memory.sparse import encode_document, encode_query, terms


def test_terms_drop_stopwords_and_fold_plurals() -> None:
    assert terms("The cars of Kestrel's railway") == ["car", "kestrel", "railway"]
    assert terms("Glass class 2019") == ["glass", "class", "2019"]


def test_document_vector_saturates_repeated_terms() -> None:
    once = encode_document("funicular")
    thrice = encode_document("funicular funicular funicular")
    assert once.indices == thrice.indices
    assert once.values[0] < thrice.values[0] < 3 * once.values[0]


def test_query_overlaps_document_on_shared_terms() -> None:
    doc = encode_document("The funicular car Wren was rebuilt in 2019.")
    query = encode_query("When was Wren rebuilt?")
    assert set(query.indices) <= set(doc.indices)
    assert query.values == [1.0] * len(query.indices)
    assert encode_query("the of and").indices == []
