/* The feature pass's hot loops in C (issue 13): feature names -> ids without building strings,
 * and per-row counting, weighting and linear products without numpy's per-call overhead.
 *
 * Why C: after rjieba, the remaining cost of a review was Python and numpy work per feature
 * (building bigram strings, dict lookups, np.unique of the batch's (row, column) keys, gathers)
 * and a fixed ~0.6 ms of numpy calls per request. These loops replace it; which features a row
 * reads stays in Python. After the products, the aspect model's pair scores, Platt probabilities
 * and decisions (pair_scores) are here too: for one text, the two dozen numpy calls they took cost
 * more than the maths, and several times more out of the CPU caches (between requests).
 *
 * Exactness: the kernels reproduce the numpy/scipy arithmetic they replace operation by
 * operation (entries in ascending column order per row, float32 products accumulated in
 * float32 like scipy's CSR kernels, float64 sums like np.bincount, count transforms read from
 * tables numpy computed), so served scores equal the string featurisation's bit for bit
 * (tests/test_features.py). One exception: pair_scores calls the C library's exp where numpy has
 * its own, so a probability can differ from numpy's in the last bit (tests/test_aspect_model.py).
 * Build with -ffp-contract=off: a fused multiply-add would round differently.
 *
 * Python API (wrapped by app/pipeline/features.py, which fixes dtypes and shapes; add_lex and
 * pair_scores are called by app/pipeline/aspect_model.py with arrays it prepared at load):
 *   Vocab()                        an open-addressing table of feature names (code points)
 *   Vocab.add(names) -> bytes      int32 ids, new names numbered in order, known ones reused
 *   Vocab.add_joined(blob) -> bytes  add() of the names of a NUL-joined UTF-8 blob
 *   Vocab.lookup(names) -> bytes   int32 ids, -1 for unknown names
 *   Vocab.encode(despaced, low, words) -> bytes
 *       int32 ids of: WORD+w for each word, BIGRAM+a+JOIN+b for each adjacent pair, the char
 *       1-, 2-, 3-grams of `despaced` (all unigrams, then bigrams, then trigrams) and, when
 *       `low` is not None, the sentiment model's char n-grams of `low` (unigrams that are not
 *       whitespace, then every bigram, then every trigram)
 *   tfidf_product(ids, segs, rowptr, columns, idf, logtab, groups, weights, out)
 *   sentiment_margins(ids, segs, rowptr, columns, valtab, weights, intercept, out)
 * `columns` maps union ids to the model's columns; None when the model's vocabulary was the first
 * added to the table, so that its ids are its columns (one memory access less per feature).
 *   add_dense(x, weights, out, n, m)
 *   add_lex(rows, cols, vals, lengths, n_clauses, len_col, clauses_col, scale, weights, out)
 *   pair_scores(lin, k, n_docs, direct, presence, polarity, sign, a, c, threshold, lexicon_union,
 *               lexicon) -> (probabilities, decided, clause_raw)
 *   scan_terms(terms, heads, firsts, prefixes, negator, factor, maxlen, text, tokens)
 *   clause_rows(spans, starts, ends, despaced, n_chars, chars_at, base)
 *   fold_width(text) -> str         normalize's full-width folding (app/pipeline/normalize.py)
 *   clause_gaps(text) -> [(start, end)]  the text between clause breaks (app/pipeline/segment.py)
 * A row reads segments (start, end) of the flat `ids`: rowptr[r] .. rowptr[r + 1] index `segs`.
 * The count tables (logtab, valtab) must cover every count a row can hold: when a row is longer
 * than the table, the kernels do nothing and return the table length they need.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define WORD_PREFIX 0x02
#define BIGRAM_PREFIX 0x03
#define JOIN_CHAR 0x01

/* ------------------------------------------------------------------ the name table */

/* A slot of the table. Names of 1-3 code points (every char n-gram) are their own key: the code
 * points plus one, 21 bits each, with SHORT set, so a lookup compares one word and never reads
 * the name back. Longer names (words, bigrams, lexicon features) keep their length (up to
 * LONG_LEN) in bits 55-62 of the key and 55 bits of their hash below, SHORT clear, and a match is
 * confirmed against the stored code points, which the slot points at (`at`, into keys): one
 * memory access, which vocab_probe_all can ask for early. */
typedef struct {
    uint64_t key;
    int32_t id; /* -1: empty */
    uint32_t at; /* long names: where the name starts in keys */
} Slot;

#define SHORT (1ULL << 63)
#define LONG_LEN 255 /* names this long or longer are also checked against their stored length */

typedef struct {
    PyObject_HEAD
    Py_UCS4 *keys;      /* every name's code points, back to back */
    size_t keys_len, keys_cap;
    uint32_t *offsets;  /* name i is keys[offsets[i] : offsets[i + 1]] */
    int32_t n, n_cap;
    Slot *slots;
    uint64_t mask;      /* slots - 1 (a power of two) */
} Vocab;

static inline uint64_t mix64(uint64_t h) { /* murmur3's finaliser */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

/* The key of name s (see Slot); *where gets the hash that places it. */
static inline uint64_t key_of(const Py_UCS4 *s, Py_ssize_t n, uint64_t *where) {
    if (n <= 3) {
        uint64_t k = SHORT;
        for (Py_ssize_t i = 0; i < n; i++) k |= (uint64_t)(s[i] + 1) << (42 - 21 * i);
        *where = mix64(k);
        return k;
    }
    uint64_t h = 0xcbf29ce484222325ULL ^ (uint64_t)n; /* FNV-1a over code points, then mixed */
    for (Py_ssize_t i = 0; i < n; i++) h = (h ^ s[i]) * 0x100000001b3ULL;
    h = mix64(h);
    *where = h;
    return (h & ((1ULL << 55) - 1)) | (uint64_t)(n < LONG_LEN ? n : LONG_LEN) << 55;
}

/* A name to look up: its code points, its key and the hash that places it (key_of). */
typedef struct {
    const Py_UCS4 *s;
    Py_ssize_t n;
    uint64_t key, where;
} Query;

static inline void query_of(Query *q, const Py_UCS4 *s, Py_ssize_t n) {
    q->s = s;
    q->n = n;
    q->key = key_of(s, n, &q->where);
}

static int32_t vocab_probe(const Vocab *v, const Query *q) {
    for (uint64_t i = q->where & v->mask;; i = (i + 1) & v->mask) {
        const Slot *slot = v->slots + i;
        if (slot->id < 0) return -1;
        if (slot->key == q->key) {
            if (q->key & SHORT) return slot->id;
            if ((q->n < LONG_LEN || (Py_ssize_t)(v->offsets[slot->id + 1] - slot->at) == q->n) &&
                memcmp(v->keys + slot->at, q->s, (size_t)q->n * sizeof(Py_UCS4)) == 0)
                return slot->id;
        }
    }
}

static int32_t vocab_find(const Vocab *v, const Py_UCS4 *s, Py_ssize_t n) {
    Query q;
    query_of(&q, s, n);
    return vocab_probe(v, &q);
}

/* ids[i] = the id of queries[i] (-1: unknown). The half a million names' slots span 16 MB, so
 * nearly every probe waits for memory: asking for the slot 2 * PROBE_AHEAD queries on, and for
 * the stored name of a long one PROBE_AHEAD on (its slot has arrived by then), while the current
 * one is probed overlaps those waits. */
#define PROBE_AHEAD 8
static void vocab_probe_all(const Vocab *v, const Query *q, Py_ssize_t n, int32_t *ids) {
    for (Py_ssize_t i = 0; i < n; i++) {
        if (i + 2 * PROBE_AHEAD < n) __builtin_prefetch(v->slots + (q[i + 2 * PROBE_AHEAD].where & v->mask));
        if (i + PROBE_AHEAD < n && !(q[i + PROBE_AHEAD].key & SHORT)) {
            const Slot *slot = v->slots + (q[i + PROBE_AHEAD].where & v->mask);
            if (slot->id >= 0 && slot->key == q[i + PROBE_AHEAD].key) __builtin_prefetch(v->keys + slot->at);
        }
        ids[i] = vocab_probe(v, q + i);
    }
}

static void vocab_place(Slot *slots, uint64_t mask, const Py_UCS4 *s, Py_ssize_t n, int32_t id, uint32_t at) {
    uint64_t where, key = key_of(s, n, &where);
    uint64_t i = where & mask;
    while (slots[i].id >= 0) i = (i + 1) & mask;
    slots[i].key = key;
    slots[i].id = id;
    slots[i].at = at;
}

static int vocab_resize(Vocab *v, uint64_t n_slots) {
    Slot *slots = PyMem_Malloc(n_slots * sizeof(Slot));
    if (!slots) {
        PyErr_NoMemory();
        return -1;
    }
    for (uint64_t i = 0; i < n_slots; i++) slots[i].id = -1;
    for (int32_t id = 0; id < v->n; id++) {
        uint32_t a = v->offsets[id];
        vocab_place(slots, n_slots - 1, v->keys + a, (Py_ssize_t)(v->offsets[id + 1] - a), id, a);
    }
    PyMem_Free(v->slots);
    v->slots = slots;
    v->mask = n_slots - 1;
    return 0;
}

/* The id of name s (added when new). -1 with an exception set on failure. */
static int32_t vocab_add(Vocab *v, const Py_UCS4 *s, Py_ssize_t n) {
    int32_t id = vocab_find(v, s, n);
    if (id >= 0) return id;
    if (v->n == INT32_MAX - 1) {
        PyErr_SetString(PyExc_OverflowError, "too many feature names");
        return -1;
    }
    if ((uint64_t)(v->n + 1) * 10 > (v->mask + 1) * 6) { /* keep the load under 0.6 */
        if (vocab_resize(v, (v->mask + 1) * 2) < 0) return -1;
    }
    if (v->keys_len + (size_t)n > UINT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "feature names too long in all");
        return -1;
    }
    if (v->keys_len + (size_t)n > v->keys_cap) {
        size_t cap = v->keys_cap * 2 + (size_t)n;
        Py_UCS4 *k = PyMem_Realloc(v->keys, cap * sizeof(Py_UCS4));
        if (!k) {
            PyErr_NoMemory();
            return -1;
        }
        v->keys = k;
        v->keys_cap = cap;
    }
    if (v->n + 2 > v->n_cap) {
        int64_t want = (int64_t)v->n_cap * 2 + 2;
        int32_t cap = want > INT32_MAX ? INT32_MAX : (int32_t)want;
        uint32_t *o = PyMem_Realloc(v->offsets, (size_t)cap * sizeof(uint32_t));
        if (!o) {
            PyErr_NoMemory();
            return -1;
        }
        v->offsets = o;
        v->n_cap = cap;
    }
    uint32_t at = (uint32_t)v->keys_len;
    if (n) memcpy(v->keys + v->keys_len, s, (size_t)n * sizeof(Py_UCS4));
    v->keys_len += (size_t)n;
    id = v->n++;
    v->offsets[v->n] = (uint32_t)v->keys_len;
    vocab_place(v->slots, v->mask, s, n, id, at);
    return id;
}

static PyObject *Vocab_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, ":Vocab", kwlist)) return NULL;
    Vocab *v = (Vocab *)type->tp_alloc(type, 0);
    if (!v) return NULL;
    v->offsets = PyMem_Malloc(2 * sizeof(uint32_t));
    if (!v->offsets) {
        Py_DECREF(v);
        return PyErr_NoMemory();
    }
    v->offsets[0] = 0;
    v->n_cap = 2;
    if (vocab_resize(v, 1024) < 0) {
        Py_DECREF(v);
        return NULL;
    }
    return (PyObject *)v;
}

static void Vocab_dealloc(Vocab *v) {
    PyMem_Free(v->keys);
    PyMem_Free(v->offsets);
    PyMem_Free(v->slots);
    Py_TYPE(v)->tp_free((PyObject *)v);
}

static Py_ssize_t Vocab_len(Vocab *v) { return v->n; }

/* A growable code-point buffer for building keys. */
typedef struct {
    Py_UCS4 *s;
    Py_ssize_t n, cap;
} Buf;

static int buf_reserve(Buf *b, Py_ssize_t n) {
    if (n <= b->cap) return 0;
    Py_ssize_t cap = n > 2 * b->cap ? n : 2 * b->cap;
    Py_UCS4 *s = PyMem_Realloc(b->s, (size_t)cap * sizeof(Py_UCS4));
    if (!s) {
        PyErr_NoMemory();
        return -1;
    }
    b->s = s;
    b->cap = cap;
    return 0;
}

/* Append the code points of str o to b. */
static int buf_append(Buf *b, PyObject *o) {
    if (!PyUnicode_Check(o)) {
        PyErr_Format(PyExc_TypeError, "feature names must be str, not %.100s", Py_TYPE(o)->tp_name);
        return -1;
    }
    if (PyUnicode_READY(o) < 0) return -1;
    Py_ssize_t n = PyUnicode_GET_LENGTH(o);
    if (buf_reserve(b, b->n + n) < 0) return -1;
    int kind = PyUnicode_KIND(o);
    const void *data = PyUnicode_DATA(o);
    for (Py_ssize_t i = 0; i < n; i++) b->s[b->n + i] = PyUnicode_READ(kind, data, i);
    b->n += n;
    return 0;
}

/* add (adding = 1) or look up every str of a sequence; returns bytes of int32 ids. */
static PyObject *names_to_ids(Vocab *v, PyObject *names, int adding) {
    PyObject *seq = PySequence_Fast(names, "feature names must be a sequence of str");
    if (!seq) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject *out = PyBytes_FromStringAndSize(NULL, n * (Py_ssize_t)sizeof(int32_t));
    Buf b = {NULL, 0, 0};
    if (!out) goto fail;
    int32_t *ids = (int32_t *)PyBytes_AS_STRING(out);
    for (Py_ssize_t i = 0; i < n; i++) {
        b.n = 0;
        if (buf_append(&b, PySequence_Fast_GET_ITEM(seq, i)) < 0) goto fail;
        if (adding) {
            ids[i] = vocab_add(v, b.s, b.n);
            if (ids[i] < 0) goto fail;
        } else {
            ids[i] = vocab_find(v, b.s, b.n);
        }
    }
    PyMem_Free(b.s);
    Py_DECREF(seq);
    return out;
fail:
    PyMem_Free(b.s);
    Py_DECREF(seq);
    Py_XDECREF(out);
    return NULL;
}

static PyObject *Vocab_add(Vocab *v, PyObject *names) { return names_to_ids(v, names, 1); }

/* add_joined(blob): add the names of a NUL-joined UTF-8 blob (how artifacts store vocabularies),
 * one decoded at a time: half a million names never exist as Python strings at once. */
static PyObject *Vocab_add_joined(Vocab *v, PyObject *arg) {
    Py_buffer blob;
    if (PyObject_GetBuffer(arg, &blob, PyBUF_SIMPLE) < 0) return NULL;
    const char *s = blob.buf, *end = s + blob.len;
    Py_ssize_t n = 0;
    if (blob.len) {
        n = 1;
        for (const char *p = s; p < end; p++) n += *p == 0;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, n * (Py_ssize_t)sizeof(int32_t));
    Buf b = {NULL, 0, 0};
    if (!out) goto fail;
    int32_t *ids = (int32_t *)PyBytes_AS_STRING(out);
    for (Py_ssize_t i = 0; i < n; i++) {
        const char *stop = memchr(s, 0, (size_t)(end - s));
        if (!stop) stop = end;
        PyObject *name = PyUnicode_DecodeUTF8(s, stop - s, "strict");
        if (!name) goto fail;
        b.n = 0;
        int bad = buf_append(&b, name);
        Py_DECREF(name);
        if (bad < 0 || (ids[i] = vocab_add(v, b.s, b.n)) < 0) goto fail;
        if (stop < end) s = stop + 1;
    }
    PyMem_Free(b.s);
    PyBuffer_Release(&blob);
    return out;
fail:
    PyMem_Free(b.s);
    PyBuffer_Release(&blob);
    Py_XDECREF(out);
    return NULL;
}

/* reserve(n): room for n names without growing the table on the way. */
static PyObject *Vocab_reserve(Vocab *v, PyObject *arg) {
    Py_ssize_t n = PyLong_AsSsize_t(arg);
    if (n < 0 || n > INT32_MAX)
        return PyErr_Occurred() ? NULL : PyErr_Format(PyExc_ValueError, "reserve: a count of names, got %zd", n);
    uint64_t slots = v->mask + 1;
    while ((uint64_t)n * 10 > slots * 6) slots *= 2;
    if (slots != v->mask + 1 && vocab_resize(v, slots) < 0) return NULL;
    Py_RETURN_NONE;
}

/* shrink(): give back the spare room of the name store once every vocabulary is in. */
static PyObject *Vocab_shrink(Vocab *v, PyObject *Py_UNUSED(ignored)) {
    if (v->keys_len && v->keys_len < v->keys_cap) {
        Py_UCS4 *k = PyMem_Realloc(v->keys, v->keys_len * sizeof(Py_UCS4));
        if (k) {
            v->keys = k;
            v->keys_cap = v->keys_len;
        }
    }
    if (v->n + 1 < v->n_cap) {
        uint32_t *o = PyMem_Realloc(v->offsets, (size_t)(v->n + 1) * sizeof(uint32_t));
        if (o) {
            v->offsets = o;
            v->n_cap = v->n + 1;
        }
    }
    Py_RETURN_NONE;
}
static PyObject *Vocab_lookup(Vocab *v, PyObject *names) { return names_to_ids(v, names, 0); }


/* The 1-, 2-, 3-grams of t (unigrams first, then bigrams, then trigrams); with skip_space,
 * whitespace unigrams are left out (the sentiment model's rule). */
static Query *char_grams(const Py_UCS4 *t, Py_ssize_t n, int skip_space, Query *q) {
    for (Py_ssize_t i = 0; i < n; i++)
        if (!(skip_space && Py_UNICODE_ISSPACE(t[i]))) query_of(q++, t + i, 1);
    for (Py_ssize_t i = 0; i + 1 < n; i++) query_of(q++, t + i, 2);
    for (Py_ssize_t i = 0; i + 2 < n; i++) query_of(q++, t + i, 3);
    return q;
}

static PyObject *Vocab_encode(Vocab *v, PyObject *args) {
    PyObject *despaced, *low, *words;
    if (!PyArg_ParseTuple(args, "UOO!:encode", &despaced, &low, &PyList_Type, &words)) return NULL;
    if (low != Py_None && !PyUnicode_Check(low)) {
        PyErr_SetString(PyExc_TypeError, "low must be str or None");
        return NULL;
    }
    Py_UCS4 *t = NULL, *l = NULL, *names = NULL;
    Py_ssize_t *starts = NULL; /* where each word's code points start in wb */
    Buf wb = {NULL, 0, 0};
    Query *queries = NULL;
    PyObject *out = NULL;
    Py_ssize_t nt = PyUnicode_GET_LENGTH(despaced);
    Py_ssize_t nl = low == Py_None ? 0 : PyUnicode_GET_LENGTH(low);
    Py_ssize_t nw = PyList_GET_SIZE(words);
    t = PyUnicode_AsUCS4Copy(despaced);
    if (!t) goto done;
    if (low != Py_None && !(l = PyUnicode_AsUCS4Copy(low))) goto done;
    starts = PyMem_Malloc((size_t)(nw + 1) * sizeof(Py_ssize_t));
    if (!starts) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < nw; i++) {
        starts[i] = wb.n;
        if (buf_append(&wb, PyList_GET_ITEM(words, i)) < 0) goto done;
    }
    starts[nw] = wb.n;
    Py_ssize_t n_out = nw + (nw > 0 ? nw - 1 : 0) + nt + (nt > 1 ? nt - 1 : 0) + (nt > 2 ? nt - 2 : 0);
    if (l) n_out += nl + (nl > 1 ? nl - 1 : 0) + (nl > 2 ? nl - 2 : 0); /* at most: unigrams may be skipped */
    /* the word and bigram names, built once and back to back: WORD+w is 1 + |w|, each bigram at
     * most 2 + two words, so 3 * (words + their code points) holds them all */
    names = PyMem_Malloc((size_t)(3 * (nw + wb.n) + 1) * sizeof(Py_UCS4));
    queries = PyMem_Malloc((size_t)(n_out + 1) * sizeof(Query));
    if (!names || !queries) {
        PyErr_NoMemory();
        goto done;
    }
    Py_UCS4 *p = names;
    Query *q = queries;
    for (Py_ssize_t i = 0; i < nw; i++) {
        Py_ssize_t la = starts[i + 1] - starts[i];
        p[0] = WORD_PREFIX;
        if (la) memcpy(p + 1, wb.s + starts[i], (size_t)la * sizeof(Py_UCS4));
        query_of(q++, p, 1 + la);
        p += 1 + la;
    }
    for (Py_ssize_t i = 0; i + 1 < nw; i++) {
        Py_ssize_t la = starts[i + 1] - starts[i], lb = starts[i + 2] - starts[i + 1];
        p[0] = BIGRAM_PREFIX;
        if (la) memcpy(p + 1, wb.s + starts[i], (size_t)la * sizeof(Py_UCS4));
        p[1 + la] = JOIN_CHAR;
        if (lb) memcpy(p + 2 + la, wb.s + starts[i + 1], (size_t)lb * sizeof(Py_UCS4));
        query_of(q++, p, 2 + la + lb);
        p += 2 + la + lb;
    }
    q = char_grams(t, nt, 0, q);
    if (l) q = char_grams(l, nl, 1, q);
    Py_ssize_t n_ids = q - queries;
    out = PyBytes_FromStringAndSize(NULL, n_ids * (Py_ssize_t)sizeof(int32_t));
    if (out) vocab_probe_all(v, queries, n_ids, (int32_t *)PyBytes_AS_STRING(out));
done:
    PyMem_Free(t);
    PyMem_Free(l);
    PyMem_Free(names);
    PyMem_Free(queries);
    PyMem_Free(wb.s);
    PyMem_Free(starts);
    return out;
}

static PyMethodDef Vocab_methods[] = {
    {"add", (PyCFunction)Vocab_add, METH_O, "add(names) -> bytes: int32 ids, new names numbered in order"},
    {"add_joined", (PyCFunction)Vocab_add_joined, METH_O, "add_joined(blob) -> bytes: add() of a NUL-joined UTF-8 blob"},
    {"reserve", (PyCFunction)Vocab_reserve, METH_O, "reserve(n): room for n names"},
    {"shrink", (PyCFunction)Vocab_shrink, METH_NOARGS, "shrink(): free the spare room once every name is in"},
    {"lookup", (PyCFunction)Vocab_lookup, METH_O, "lookup(names) -> bytes: int32 ids, -1 when unknown"},
    {"encode", (PyCFunction)Vocab_encode, METH_VARARGS,
     "encode(despaced, low, words) -> bytes: int32 ids of words, bigrams, char n-grams (see the module)"},
    {NULL}};

static PySequenceMethods Vocab_as_sequence = {.sq_length = (lenfunc)Vocab_len};

static PyTypeObject VocabType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "app.pipeline._native.Vocab",
    .tp_basicsize = sizeof(Vocab),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Feature names -> int32 ids (one table for every model's vocabulary).",
    .tp_new = Vocab_new,
    .tp_dealloc = (destructor)Vocab_dealloc,
    .tp_methods = Vocab_methods,
    .tp_as_sequence = &Vocab_as_sequence,
};

/* Parse a contiguous buffer and check it holds n items of size itemsize (n < 0: any number). */
static int need(Py_buffer *b, Py_ssize_t itemsize, Py_ssize_t n, const char *name) {
    if (b->len % itemsize || (n >= 0 && b->len / itemsize != n)) {
        PyErr_Format(PyExc_ValueError, "%s: expected %zd items of %zd bytes, got %zd bytes", name, n, itemsize,
                     b->len);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ lexicon terms on token boundaries */

typedef struct {
    const Vocab *terms, *heads, *firsts, *prefixes;
    const uint8_t *negator; /* per prefix id: a negator (else an intensifier) */
    const double *factor;   /* per prefix id: the intensifier's factor */
    Py_ssize_t maxlen;
    const Py_UCS4 *text;
    Py_ssize_t n;
    const Py_ssize_t *starts, *ends;
    Py_ssize_t n_tokens;
} Scan;

/* The longest term starting at p and ending on the end of a token ti, ti + 1, ... (-1: none);
 * *len gets its length. */
static int32_t longest_term(const Scan *sc, Py_ssize_t ti, Py_ssize_t p, Py_ssize_t *len) {
    Py_ssize_t two = sc->n - p >= 2 ? 2 : 1;
    if (vocab_find(sc->heads, sc->text + p, two) < 0 && vocab_find(sc->terms, sc->text + p, 1) < 0) return -1;
    int32_t best = -1;
    Py_ssize_t limit = p + sc->maxlen;
    for (Py_ssize_t tj = ti; tj < sc->n_tokens && tj < ti + sc->maxlen; tj++) {
        Py_ssize_t end = sc->ends[tj];
        if (end > limit) break;
        int32_t id = vocab_find(sc->terms, sc->text + p, end - p);
        if (id >= 0) {
            best = id;
            *len = end - p;
        }
    }
    return best;
}

/* scan_terms(terms, heads, firsts, prefixes, negator, factor, maxlen, text, tokens) -> list of
 *   (start, end, term id, token index, negations peeled off, degree factor peeled off):
 *   KeywordMatcher's term search (app/pipeline/keywords.py), left to right, a term never
 *   overlapping the one before. At each token start, the longest term ending on a token
 *   boundary; failing that, inside a token that begins with negators or degree words jieba
 *   glued on (不耐烦, 太慢), the same after each of them. `heads`: the first two characters
 *   of every term; `firsts`: the first character of every prefix. */
static PyObject *scan_terms(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *terms, *heads, *firsts, *prefixes, *text_obj, *tokens;
    Py_buffer negator = {0}, factor = {0};
    Py_ssize_t maxlen;
    if (!PyArg_ParseTuple(args, "O!O!O!O!y*y*nUO!:scan_terms", &VocabType, &terms, &VocabType, &heads, &VocabType,
                          &firsts, &VocabType, &prefixes, &negator, &factor, &maxlen, &text_obj, &PyList_Type, &tokens))
        return NULL;
    PyObject *out = NULL;
    Py_UCS4 *text = NULL;
    Py_ssize_t *starts = NULL, *ends = NULL;
    Py_ssize_t n_tokens = PyList_GET_SIZE(tokens), n = PyUnicode_GET_LENGTH(text_obj);
    Py_ssize_t n_prefixes = ((Vocab *)prefixes)->n;
    if (need(&negator, 1, n_prefixes, "negator") || need(&factor, 8, n_prefixes, "factor")) goto done;
    if (!(text = PyUnicode_AsUCS4Copy(text_obj))) goto done;
    starts = PyMem_Malloc((size_t)(n_tokens + 1) * sizeof(Py_ssize_t));
    ends = PyMem_Malloc((size_t)(n_tokens + 1) * sizeof(Py_ssize_t));
    if (!starts || !ends) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t prev = 0;
    for (Py_ssize_t i = 0; i < n_tokens; i++) {
        PyObject *tok = PyList_GET_ITEM(tokens, i);
        if (!PyTuple_Check(tok) || PyTuple_GET_SIZE(tok) != 3) {
            PyErr_SetString(PyExc_TypeError, "tokens must be (word, start, end) tuples");
            goto done;
        }
        PyObject *a = PyTuple_GET_ITEM(tok, 1), *b = PyTuple_GET_ITEM(tok, 2);
        if (!PyLong_Check(a) || !PyLong_Check(b)) { /* no __index__: no Python code runs here */
            PyErr_SetString(PyExc_TypeError, "token offsets must be int");
            goto done;
        }
        starts[i] = PyLong_AsSsize_t(a);
        ends[i] = PyLong_AsSsize_t(b);
        if (PyErr_Occurred()) goto done;
        if (starts[i] < prev || ends[i] <= starts[i] || ends[i] > n) {
            PyErr_SetString(PyExc_ValueError, "tokens must tile the text in order");
            goto done;
        }
        prev = ends[i];
    }
    if (maxlen < 1 || maxlen > n) maxlen = n > 0 ? n : 1; /* no term is longer than the text */
    Scan sc = {(Vocab *)terms, (Vocab *)heads, (Vocab *)firsts, (Vocab *)prefixes, negator.buf, factor.buf,
               maxlen, text, n, starts, ends, n_tokens};
    if (!(out = PyList_New(0))) goto done;
    Py_ssize_t covered = 0;
    for (Py_ssize_t ti = 0; ti < n_tokens; ti++) {
        Py_ssize_t s = starts[ti], len = 0, at = s;
        if (s < covered) continue;
        int negs = 0;
        double deg = 1.0;
        int32_t term = longest_term(&sc, ti, s, &len);
        Py_ssize_t wlen = ends[ti] - s;
        if (term < 0 && wlen > 1 && vocab_find(sc.firsts, text + s, 1) >= 0) {
            Py_ssize_t p = 0;
            while (p < wlen - 1) { /* peel off leading negators / degree words, trying after each */
                Py_ssize_t k = 0;
                int32_t piece = -1;
                for (Py_ssize_t kk = 2; kk >= 1; kk--) {
                    if (p + kk < wlen && (piece = vocab_find(sc.prefixes, text + s + p, kk)) >= 0) {
                        k = kk;
                        break;
                    }
                }
                if (!k) break;
                if (sc.negator[piece]) {
                    negs++;
                } else {
                    double f;
                    memcpy(&f, (const char *)sc.factor + (size_t)piece * sizeof(double), sizeof f); /* any alignment */
                    deg *= f;
                }
                p += k;
                if ((term = longest_term(&sc, ti, s + p, &len)) >= 0) {
                    at = s + p;
                    break;
                }
            }
        }
        if (term < 0) continue;
        PyObject *hit = Py_BuildValue("(nninid)", at, at + len, (int)term, ti, negs, deg);
        if (!hit || PyList_Append(out, hit) < 0) {
            Py_XDECREF(hit);
            Py_CLEAR(out);
            goto done;
        }
        Py_DECREF(hit);
        covered = at + len;
    }
done:
    PyMem_Free(text);
    PyMem_Free(starts);
    PyMem_Free(ends);
    PyBuffer_Release(&negator);
    PyBuffer_Release(&factor);
    return out;
}

/* ------------------------------------------------------------------ clause rows */

/* The sorted int list `list` as an array (for bisection); -1 with an exception set on failure. */
static int int_list(PyObject *list, Py_ssize_t **out, Py_ssize_t *n) {
    if (!PyList_Check(list)) {
        PyErr_SetString(PyExc_TypeError, "expected a list of int");
        return -1;
    }
    *n = PyList_GET_SIZE(list);
    *out = PyMem_Malloc((size_t)(*n + 1) * sizeof(Py_ssize_t));
    if (!*out) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < *n; i++) {
        PyObject *x = PyList_GET_ITEM(list, i);
        if (!PyLong_Check(x)) {
            PyErr_SetString(PyExc_TypeError, "expected a list of int");
            return -1;
        }
        (*out)[i] = PyLong_AsSsize_t(x);
        if ((*out)[i] == -1 && PyErr_Occurred()) return -1;
    }
    return 0;
}

static Py_ssize_t bisect_left_(const Py_ssize_t *a, Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t x) {
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        if (a[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static Py_ssize_t bisect_right_(const Py_ssize_t *a, Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t x) {
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        if (x < a[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* clause_rows(spans, starts, ends, despaced, n_chars, chars_at, base) -> (runs, words):
 *   for each clause (start, end) of a text, the aspect model's runs of its ids taken alone
 *   (features.Encoded.clause_runs: unigram, bigram and trigram runs of its char n-grams, then
 *   its words; 8 ints) and the range [lo, hi) of its words (DocFeatures.word_spans), both offset
 *   by `base`. `starts`/`ends`: the words' offsets; `despaced`: the text position of each
 *   character of the text without whitespace (None: the text has none); `n_chars`: how many. */
static PyObject *clause_rows(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *spans, *starts_obj, *ends_obj, *despaced_obj;
    Py_ssize_t n, chars_at, base;
    if (!PyArg_ParseTuple(args, "O!O!O!Onnn:clause_rows", &PyList_Type, &spans, &PyList_Type, &starts_obj,
                          &PyList_Type, &ends_obj, &despaced_obj, &n, &chars_at, &base))
        return NULL;
    Py_ssize_t *starts = NULL, *ends = NULL, *despaced = NULL, n_words = 0, n_ends = 0, n_despaced = 0;
    PyObject *runs = NULL, *words = NULL, *result = NULL;
    if (int_list(starts_obj, &starts, &n_words) < 0 || int_list(ends_obj, &ends, &n_ends) < 0) goto done;
    if (despaced_obj != Py_None && int_list(despaced_obj, &despaced, &n_despaced) < 0) goto done;
    if (n_ends != n_words || n < 0 || (despaced && n_despaced != n)) {
        PyErr_SetString(PyExc_ValueError, "clause_rows: inconsistent lengths");
        goto done;
    }
    Py_ssize_t n_spans = PyList_GET_SIZE(spans);
    if (!(runs = PyList_New(8 * n_spans)) || !(words = PyList_New(2 * n_spans))) goto done;
    Py_ssize_t c1 = base + chars_at, c2 = c1 + n, c3 = c2 + (n > 1 ? n - 1 : 0);
    for (Py_ssize_t i = 0; i < n_spans; i++) {
        PyObject *span = PyList_GET_ITEM(spans, i);
        Py_ssize_t start, end;
        if (!PyTuple_Check(span) || !PyArg_ParseTuple(span, "nn", &start, &end)) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "spans must be (start, end) tuples");
            goto done;
        }
        Py_ssize_t a = start, b = end;
        if (despaced) {
            a = bisect_left_(despaced, 0, n, start);
            b = bisect_left_(despaced, 0, n, end);
        }
        if (a < 0 || b < a || b > n) {
            PyErr_SetString(PyExc_ValueError, "clause_rows: a span outside the text");
            goto done;
        }
        Py_ssize_t lo = bisect_left_(starts, 0, n_words, start);
        Py_ssize_t hi = bisect_right_(ends, lo, n_words, end);
        if (hi < lo) hi = lo;
        Py_ssize_t vals[8] = {c1 + a, c1 + b, c1, c1, c1, c1, base + lo, base + hi};
        if (b - a > 1) { /* a clause of one or two characters has no trigram (and of one no bigram) */
            vals[2] = c2 + a;
            vals[3] = c2 + b - 1;
        }
        if (b - a > 2) {
            vals[4] = c3 + a;
            vals[5] = c3 + b - 2;
        }
        for (int k = 0; k < 8; k++) {
            PyObject *x = PyLong_FromSsize_t(vals[k]);
            if (!x) goto done;
            PyList_SET_ITEM(runs, 8 * i + k, x);
        }
        PyObject *x = PyLong_FromSsize_t(base + lo), *y = PyLong_FromSsize_t(base + hi);
        if (!x || !y) {
            Py_XDECREF(x);
            Py_XDECREF(y);
            goto done;
        }
        PyList_SET_ITEM(words, 2 * i, x);
        PyList_SET_ITEM(words, 2 * i + 1, y);
    }
    result = PyTuple_Pack(2, runs, words);
done:
    PyMem_Free(starts);
    PyMem_Free(ends);
    PyMem_Free(despaced);
    Py_XDECREF(runs);
    Py_XDECREF(words);
    return result;
}

/* ------------------------------------------------------------------ rows: ids -> sorted (column, count) */

typedef struct {
    const int32_t *ids;
    Py_ssize_t n_ids;
    const int64_t *segs; /* (start, end) pairs */
    Py_ssize_t n_segs;
    const int64_t *rowptr; /* row r reads segments rowptr[r] .. rowptr[r + 1] */
    Py_ssize_t n_rows;
    const int32_t *columns; /* union id -> column, -1 when the model has none; NULL: the id itself */
    Py_ssize_t n_columns;
    int32_t width; /* columns must be < width */
} Rows;

/* Sort ascending: quicksort (median of three) down to runs of 16, then one insertion pass. A row
 * holds a few hundred ids; this is ~3x faster than qsort's comparator calls. */
static void sort_int32(int32_t *a, Py_ssize_t n) {
    while (n > 16) {
        int32_t x = a[0], y = a[n / 2], z = a[n - 1];
        int32_t pivot = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
        Py_ssize_t i = 0, j = n - 1;
        for (;;) {
            while (a[i] < pivot) i++;
            while (a[j] > pivot) j--;
            if (i >= j) break;
            int32_t t = a[i];
            a[i++] = a[j];
            a[j--] = t;
        }
        /* [0, j] <= pivot <= [j + 1, n): recurse on the smaller side, loop on the larger */
        Py_ssize_t left = j + 1;
        if (left < n - left) {
            sort_int32(a, left);
            a += left;
            n -= left;
        } else {
            sort_int32(a + left, n - left);
            n = left;
        }
    }
    for (Py_ssize_t i = 1; i < n; i++) {
        int32_t x = a[i];
        Py_ssize_t j = i;
        while (j > 0 && a[j - 1] > x) {
            a[j] = a[j - 1];
            j--;
        }
        a[j] = x;
    }
}

/* Check the row structure; returns the longest row (ids) or -1 with an exception set. */
static Py_ssize_t rows_check(const Rows *r) {
    if (r->n_rows < 0 || r->rowptr[0] != 0 || r->rowptr[r->n_rows] > r->n_segs) goto bad;
    Py_ssize_t longest = 0;
    for (Py_ssize_t i = 0; i < r->n_rows; i++) {
        if (r->rowptr[i + 1] < r->rowptr[i] || r->rowptr[i + 1] > r->n_segs) goto bad;
        Py_ssize_t len = 0;
        for (int64_t s = r->rowptr[i]; s < r->rowptr[i + 1]; s++) {
            int64_t a = r->segs[2 * s], b = r->segs[2 * s + 1];
            if (a < 0 || b < a || b > r->n_ids) goto bad;
            len += (Py_ssize_t)(b - a);
        }
        if (len > longest) longest = len;
    }
    return longest;
bad:
    PyErr_SetString(PyExc_ValueError, "malformed rows: segments out of range");
    return -1;
}

/* Sort ascending n values in [0, max_value]: quicksort for short rows, else a byte-wise LSD radix
 * sort through tmp (n entries), as many passes as max_value has bytes. Sorting a row's ids was
 * the costliest C function of the feature pass: quicksort's compares mispredict on random ids,
 * the radix passes have no data-dependent branches. */
static void sort_columns(int32_t *a, int32_t *tmp, Py_ssize_t n, int32_t max_value) {
    if (n < 64) {
        sort_int32(a, n);
        return;
    }
    int32_t *src = a, *dst = tmp;
    for (int shift = 0; shift < 32 && ((uint32_t)max_value >> shift); shift += 8) {
        Py_ssize_t at[257] = {0};
        for (Py_ssize_t i = 0; i < n; i++) at[(((uint32_t)src[i] >> shift) & 255) + 1]++;
        for (int b = 0; b < 256; b++) at[b + 1] += at[b];
        for (Py_ssize_t i = 0; i < n; i++) dst[at[((uint32_t)src[i] >> shift) & 255]++] = src[i];
        int32_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != a) memcpy(a, src, (size_t)n * sizeof(int32_t));
}

/* Row i's known columns, sorted, run-length coded into cols/counts; returns how many, or -1
 * when an id or a column is out of range. */
static Py_ssize_t row_counts(const Rows *r, Py_ssize_t i, int32_t *scratch, int32_t *cols, int32_t *counts) {
    Py_ssize_t m = 0;
    for (int64_t s = r->rowptr[i]; s < r->rowptr[i + 1]; s++) {
        int64_t end = r->segs[2 * s + 1];
        for (int64_t k = r->segs[2 * s]; k < end; k++) {
            if (r->columns && k + PROBE_AHEAD < end) { /* the column map is megabytes: as in vocab_probe_all */
                int32_t ahead = r->ids[k + PROBE_AHEAD];
                if (ahead >= 0 && ahead < r->n_columns) __builtin_prefetch(r->columns + ahead);
            }
            int32_t id = r->ids[k];
            if (id < 0) continue;
            int32_t c;
            if (r->columns) {
                if (id >= r->n_columns) return -1;
                c = r->columns[id];
                if (c < 0) continue;
                if (c >= r->width) return -1;
            } else if (id < r->width) {
                c = id; /* the model's vocabulary is the first in the table: ids are its columns */
            } else {
                continue;
            }
            scratch[m++] = c;
        }
    }
    sort_columns(scratch, cols, m, r->width - 1);
    Py_ssize_t u = 0;
    for (Py_ssize_t k = 0; k < m; k++) {
        if (u && cols[u - 1] == scratch[k]) {
            counts[u - 1]++;
        } else {
            cols[u] = scratch[k];
            counts[u++] = 1;
        }
    }
    return u;
}

/* What a kernel returns once its rows are walked: None, or the error a bad id or column raised. */
static PyObject *walked(int bad) {
    if (bad) {
        PyErr_SetString(PyExc_ValueError, "an id or a column is out of range");
        return NULL;
    }
    return Py_NewRef(Py_None);
}

static void release(Py_buffer *const *buffers, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (buffers[i]->obj) PyBuffer_Release(buffers[i]);
}

/* A kernel's per-row scratch: the row's columns before and after run-length coding. */
typedef struct {
    int32_t *ids, *cols, *counts;
} Scratch;

static void scratch_free(Scratch *s) {
    PyMem_Free(s->ids);
    PyMem_Free(s->cols);
    PyMem_Free(s->counts);
}

/* The set-up both kernels share: check the rows; when a row could count past the count table
 * (``table_len`` entries), set *ask to the length needed (the kernel returns it and does
 * nothing); else allocate the scratch. Returns the longest row's length (go on), or -1: stop
 * (an exception is set, or *ask). */
static Py_ssize_t rows_begin(const Rows *r, Py_ssize_t table_len, Scratch *s, PyObject **ask) {
    Py_ssize_t longest = rows_check(r);
    if (longest < 0) return -1;
    if (longest >= table_len) {
        *ask = PyLong_FromSsize_t(longest + 1);
        return -1;
    }
    size_t bytes = (size_t)(longest + 1) * sizeof(int32_t);
    s->ids = PyMem_Malloc(bytes);
    s->cols = PyMem_Malloc(bytes);
    s->counts = PyMem_Malloc(bytes);
    if (!s->ids || !s->cols || !s->counts) {
        PyErr_NoMemory();
        return -1;
    }
    return longest;
}

static int need_rows(Py_ssize_t n_rows) {
    if (n_rows >= 0) return 0;
    PyErr_SetString(PyExc_ValueError, "rowptr: expected n_rows + 1 offsets");
    return -1;
}

/* The weight rows a row's columns read are scattered over megabytes (45,547 x 36 floats for the
 * aspect n-grams): asking for the row AHEAD columns on while the current one is summed took the
 * product from 11.9 to 10.3 us a review. The sentiment weights (8 bytes a column) gained nothing. */
#define AHEAD 8
static inline void prefetch_row(const float *p, Py_ssize_t k) {
    for (Py_ssize_t c = 0; c < k; c += 16) __builtin_prefetch(p + c);
    __builtin_prefetch(p + k - 1);
}

/* tfidf_product(ids, segs, rowptr, columns, idf, logtab, groups, weights, out):
 *   per row, x = logtab[count] * idf[col] (logtab[c] = 1 + log c), L2-normalised within each
 *   group (groups[col], 0 or 1; None: one group), then out[row] += float32(x) * weights[col]
 *   accumulated in float32 in ascending column order (scipy's csr_matvec(s)). */
static PyObject *tfidf_product(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer ids = {0}, segs = {0}, rowptr = {0}, columns = {0}, idf = {0}, logtab = {0}, groups = {0}, w = {0},
              out = {0};
    PyObject *columns_obj, *groups_obj, *result = NULL;
    Scratch sc = {NULL, NULL, NULL};
    double *xs = NULL;
    if (!PyArg_ParseTuple(args, "y*y*y*Oy*y*Oy*w*:tfidf_product", &ids, &segs, &rowptr, &columns_obj, &idf, &logtab,
                          &groups_obj, &w, &out))
        return NULL;
    if (columns_obj != Py_None && PyObject_GetBuffer(columns_obj, &columns, PyBUF_SIMPLE) < 0) goto done;
    if (groups_obj != Py_None && PyObject_GetBuffer(groups_obj, &groups, PyBUF_SIMPLE) < 0) goto done;
    Py_ssize_t width = idf.len / (Py_ssize_t)sizeof(double);
    Py_ssize_t n_rows = rowptr.len / (Py_ssize_t)sizeof(int64_t) - 1;
    if (need(&ids, 4, -1, "ids") || need(&segs, 16, -1, "segs") || need(&rowptr, 8, -1, "rowptr") ||
        need(&columns, 4, -1, "columns") || need(&idf, 8, -1, "idf") || need(&logtab, 8, -1, "logtab") ||
        need(&w, 4, -1, "weights") || need_rows(n_rows))
        goto done;
    if (width == 0 || w.len / 4 % width) {
        PyErr_SetString(PyExc_ValueError, "weights: expected (len(idf), k) float32");
        goto done;
    }
    Py_ssize_t k = w.len / 4 / width;
    if (need(&out, 4, n_rows * k, "out") || (groups.obj && need(&groups, 1, width, "groups"))) goto done;
    Rows r = {ids.buf, ids.len / 4, segs.buf, segs.len / 16, rowptr.buf, n_rows, columns.obj ? columns.buf : NULL,
              columns.len / 4, (int32_t)width};
    Py_ssize_t longest = rows_begin(&r, logtab.len / 8, &sc, &result);
    if (longest < 0) goto done;
    if (!(xs = PyMem_Malloc((size_t)(longest + 1) * sizeof(double)))) {
        PyErr_NoMemory();
        goto done;
    }
    const double *idf_ = idf.buf, *log_ = logtab.buf;
    const uint8_t *grp = groups.obj ? groups.buf : NULL;
    const float *W = w.buf;
    float *restrict Y = out.buf;
    int bad = 0;
    Py_BEGIN_ALLOW_THREADS;
    for (Py_ssize_t i = 0; i < n_rows && !bad; i++) {
        Py_ssize_t u = row_counts(&r, i, sc.ids, sc.cols, sc.counts);
        const int32_t *cols = sc.cols, *counts = sc.counts;
        if (u < 0) {
            bad = 1;
            break;
        }
        double ss[2] = {0.0, 0.0};
        for (Py_ssize_t j = 0; j < u; j++) {
            double x = log_[counts[j]] * idf_[cols[j]];
            xs[j] = x;
            ss[grp ? (grp[cols[j]] != 0) : 0] += x * x;
        }
        double norm[2] = {sqrt(ss[0]), sqrt(ss[1])};
        float *restrict y = Y + i * k;
        for (Py_ssize_t j = 0; j < u && j < AHEAD; j++) prefetch_row(W + (Py_ssize_t)cols[j] * k, k);
        for (Py_ssize_t j = 0; j < u; j++) {
            if (j + AHEAD < u) prefetch_row(W + (Py_ssize_t)cols[j + AHEAD] * k, k);
            double nj = norm[grp ? (grp[cols[j]] != 0) : 0];
            float a = nj > 0 ? (float)(xs[j] / nj) : 0.0f;
            const float *restrict wr = W + (Py_ssize_t)cols[j] * k;
            for (Py_ssize_t c = 0; c < k; c++) y[c] += a * wr[c];
        }
    }
    Py_END_ALLOW_THREADS;
    result = walked(bad);
done:
    scratch_free(&sc);
    PyMem_Free(xs);
    Py_buffer *all[] = {&ids, &segs, &rowptr, &columns, &idf, &logtab, &groups, &w, &out};
    release(all, sizeof all / sizeof all[0]);
    return result;
}

/* sentiment_margins(ids, segs, rowptr, columns, valtab, weights, intercept, out):
 *   per row, v = valtab[count] (float32), with (s2, u) = weights[col],
 *   z = sum(v * u) / sqrt(sum(v * v * s2)) + intercept, products in float32 and sums in float64
 *   (LinearSentimentModel.margins). The two weights sit side by side: one cache line per column. */
static PyObject *sentiment_margins(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer ids = {0}, segs = {0}, rowptr = {0}, columns = {0}, valtab = {0}, w = {0}, out = {0};
    PyObject *columns_obj;
    double intercept;
    PyObject *result = NULL;
    Scratch sc = {NULL, NULL, NULL};
    if (!PyArg_ParseTuple(args, "y*y*y*Oy*y*dw*:sentiment_margins", &ids, &segs, &rowptr, &columns_obj, &valtab, &w,
                          &intercept, &out))
        return NULL;
    if (columns_obj != Py_None && PyObject_GetBuffer(columns_obj, &columns, PyBUF_SIMPLE) < 0) goto done;
    Py_ssize_t width = w.len / 8;
    Py_ssize_t n_rows = rowptr.len / 8 - 1;
    if (need(&ids, 4, -1, "ids") || need(&segs, 16, -1, "segs") || need(&rowptr, 8, -1, "rowptr") ||
        need(&columns, 4, -1, "columns") || need(&valtab, 4, -1, "valtab") || need(&w, 8, -1, "weights") ||
        need_rows(n_rows) || need(&out, 8, n_rows, "out"))
        goto done;
    Rows r = {ids.buf, ids.len / 4, segs.buf, segs.len / 16, rowptr.buf, n_rows, columns.obj ? columns.buf : NULL,
              columns.len / 4, (int32_t)width};
    if (rows_begin(&r, valtab.len / 4, &sc, &result) < 0) goto done;
    const float *val = valtab.buf, *W = w.buf;
    double *z = out.buf;
    int bad = 0;
    Py_BEGIN_ALLOW_THREADS;
    for (Py_ssize_t i = 0; i < n_rows; i++) {
        Py_ssize_t m = row_counts(&r, i, sc.ids, sc.cols, sc.counts);
        const int32_t *cols = sc.cols, *counts = sc.counts;
        if (m < 0) {
            bad = 1;
            break;
        }
        double ss = 0.0, num = 0.0;
        for (Py_ssize_t j = 0; j < m; j++) {
            float v = val[counts[j]];
            const float *wc = W + 2 * (Py_ssize_t)cols[j];
            float vv = v * v;
            float a = vv * wc[0];
            ss += (double)a;
            float b = v * wc[1];
            num += (double)b;
        }
        double norm = sqrt(ss);
        if (norm == 0) norm = 1.0;
        z[i] = num / norm + intercept;
    }
    Py_END_ALLOW_THREADS;
    result = walked(bad);
done:
    scratch_free(&sc);
    Py_buffer *all[] = {&ids, &segs, &rowptr, &columns, &valtab, &w, &out};
    release(all, sizeof all / sizeof all[0]);
    return result;
}

/* add_dense(x, weights, out): out[i] += x[i, j] * weights[j] for every j with x[i, j] != 0, in
 *   ascending j, in float32: scipy's CSR product over the nonzeros of a dense block. */
static PyObject *add_dense(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer x = {0}, w = {0}, out = {0};
    Py_ssize_t n, m;
    PyObject *result = NULL;
    if (!PyArg_ParseTuple(args, "y*y*w*nn:add_dense", &x, &w, &out, &n, &m)) return NULL;
    if (n < 0 || m <= 0 || n > PY_SSIZE_T_MAX / 4 / m) {
        PyErr_SetString(PyExc_ValueError, "add_dense: bad shape");
        goto done;
    }
    if (need(&x, 4, n * m, "x") || need(&w, 4, -1, "weights")) goto done;
    if (w.len / 4 % m) {
        PyErr_SetString(PyExc_ValueError, "weights: expected (m, k) float32");
        goto done;
    }
    Py_ssize_t k = w.len / 4 / m;
    if (k && n > PY_SSIZE_T_MAX / 4 / k) {
        PyErr_SetString(PyExc_ValueError, "add_dense: bad shape");
        goto done;
    }
    if (need(&out, 4, n * k, "out")) goto done;
    const float *restrict X = x.buf, *restrict W = w.buf;
    float *restrict Y = out.buf;
    for (Py_ssize_t i = 0; i < n; i++) {
        float *restrict y = Y + i * k;
        for (Py_ssize_t j = 0; j < m; j++) {
            float a = X[i * m + j];
            if (a == 0.0f) continue;
            for (Py_ssize_t c = 0; c < k; c++) y[c] += a * W[j * k + c];
        }
    }
    result = Py_NewRef(Py_None);
done:
    Py_buffer *all[] = {&x, &w, &out};
    release(all, sizeof all / sizeof all[0]);
    return result;
}

/* add_lex(rows, cols, vals, lengths, n_clauses, len_col, clauses_col, scale, weights, out):
 *   the aspect model's lexicon block times its weights, added to out (float32, n x k) for the
 *   n = len(lengths) rows. A row's block is float64: the entries (rows, cols, vals: lists of
 *   equal length) summed in order as aspect_model.lex_vector adds them, then len_col =
 *   log1p(length) / 5 and clauses_col = log1p(n_clauses) / 2; times scale, cast to float32, and
 *   each nonzero column j in order adds x_j * weights[j] (float32; add_dense's loop). One call
 *   instead of a dense matrix built by eight numpy calls (np.add.at and its casts). */
static PyObject *add_lex(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *rows, *cols, *vals, *lengths, *clauses, *result = NULL;
    Py_ssize_t len_col, clauses_col;
    double scale;
    Py_buffer w = {0}, out = {0};
    double *block = NULL;
    if (!PyArg_ParseTuple(args, "O!O!O!O!O!nndy*w*:add_lex", &PyList_Type, &rows, &PyList_Type, &cols, &PyList_Type,
                          &vals, &PyList_Type, &lengths, &PyList_Type, &clauses, &len_col, &clauses_col, &scale, &w,
                          &out))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(lengths), e = PyList_GET_SIZE(rows), m = 0, k = 0;
    if (PyList_GET_SIZE(clauses) != n || PyList_GET_SIZE(cols) != e || PyList_GET_SIZE(vals) != e) {
        PyErr_SetString(PyExc_ValueError, "add_lex: rows, cols, vals (and lengths, n_clauses) differ in length");
        goto done;
    }
    if (!n) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    if (need(&out, 4, -1, "out") || need(&w, 4, -1, "weights")) goto done;
    k = out.len / 4 / n;
    if (k <= 0 || out.len != n * k * 4 || w.len / 4 % k) {
        PyErr_SetString(PyExc_ValueError, "add_lex: expected out (n, k) and weights (m, k) float32");
        goto done;
    }
    m = w.len / 4 / k;
    if (len_col < 0 || len_col >= m || clauses_col < 0 || clauses_col >= m || n > PY_SSIZE_T_MAX / 8 / m) {
        PyErr_SetString(PyExc_ValueError, "add_lex: a column is out of range");
        goto done;
    }
    if (!(block = PyMem_Calloc((size_t)(n * m), sizeof(double)))) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < e; i++) {
        Py_ssize_t r = PyLong_AsSsize_t(PyList_GET_ITEM(rows, i)), c = PyLong_AsSsize_t(PyList_GET_ITEM(cols, i));
        double v = PyFloat_AsDouble(PyList_GET_ITEM(vals, i));
        if (PyErr_Occurred()) goto done;
        if (r < 0 || r >= n || c < 0 || c >= m) {
            PyErr_SetString(PyExc_ValueError, "add_lex: an entry is out of range");
            goto done;
        }
        block[r * m + c] += v;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t size = PyLong_AsSsize_t(PyList_GET_ITEM(lengths, i)), nc = PyLong_AsSsize_t(PyList_GET_ITEM(clauses, i));
        if (PyErr_Occurred()) goto done;
        block[i * m + len_col] = log1p((double)size) / 5;
        block[i * m + clauses_col] = log1p((double)nc) / 2;
    }
    const float *restrict W = w.buf;
    float *restrict Y = out.buf;
    for (Py_ssize_t i = 0; i < n; i++) {
        float *restrict y = Y + i * k;
        for (Py_ssize_t j = 0; j < m; j++) {
            float a = (float)(block[i * m + j] * scale);
            if (a == 0.0f) continue;
            for (Py_ssize_t c = 0; c < k; c++) y[c] += a * W[j * k + c];
        }
    }
    result = Py_NewRef(Py_None);
done:
    PyMem_Free(block);
    Py_buffer *all[] = {&w, &out};
    release(all, sizeof all / sizeof all[0]);
    return result;
}

/* pair_scores(lin, k, n_docs, direct, presence, polarity, sign, a, c, threshold, lexicon_union, lexicon)
 *   -> (probabilities, decided, clause_raw): the aspect model after its linear scores, for one
 *   call's rows (``AspectModel.score``). ``lin`` is (rows, k) float64; pair j's raw score is
 *   lin[direct[j]] + min(lin[presence[j]], lin[polarity[j]] * sign[j]) (aspect_model.combine).
 *   The first n_docs rows (documents) get their Platt probabilities 1 / (1 + exp(-clip(raw * a + c,
 *   -35, 35))) (aspect_model.platt) and the pairs decided: probability >= threshold, or
 *   lexicon_union[j] and the document's lexicon hit of pair j (``lexicon``: n_docs x pairs bytes,
 *   aspect_model.lexicon_pairs); the other rows (clauses) their raw scores. All as Python lists:
 *   numpy's per-call dispatch of those two dozen small steps cost more than the maths for one
 *   text, and several times more when a request finds it out of the CPU caches. */
static PyObject *float_list(const double *x, Py_ssize_t n) {
    PyObject *list = PyList_New(n);
    if (!list) return NULL;
    for (Py_ssize_t j = 0; j < n; j++) {
        PyObject *f = PyFloat_FromDouble(x[j]);
        if (!f) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, j, f);
    }
    return list;
}

static PyObject *pair_scores(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer lin = {0}, direct = {0}, presence = {0}, polarity = {0}, sign = {0}, a = {0}, c = {0}, thr = {0},
              uni = {0}, lex = {0};
    Py_ssize_t k, n_docs;
    PyObject *probs = NULL, *decided = NULL, *rest = NULL, *result = NULL;
    double *raw = NULL;
    if (!PyArg_ParseTuple(args, "y*nny*y*y*y*y*y*y*y*y*:pair_scores", &lin, &k, &n_docs, &direct, &presence,
                          &polarity, &sign, &a, &c, &thr, &uni, &lex))
        return NULL;
    Py_ssize_t p = direct.len / 4;
    if (k <= 0 || need(&lin, 8, -1, "lin") || lin.len / 8 % k) {
        PyErr_SetString(PyExc_ValueError, "lin: expected (rows, k) float64");
        goto done;
    }
    Py_ssize_t n_rows = lin.len / 8 / k;
    if (need(&direct, 4, -1, "direct") || need(&presence, 4, p, "presence") || need(&polarity, 4, p, "polarity") ||
        need(&sign, 8, p, "sign") || need(&a, 8, p, "a") || need(&c, 8, p, "c") || need(&thr, 8, p, "threshold") ||
        need(&uni, 1, p, "lexicon_union"))
        goto done;
    if (n_docs < 0 || n_docs > n_rows || (p && n_docs > PY_SSIZE_T_MAX / p)) {
        PyErr_SetString(PyExc_ValueError, "pair_scores: n_docs must be between 0 and the rows of lin");
        goto done;
    }
    if (need(&lex, 1, n_docs * p, "lexicon")) goto done;
    const int32_t *di = direct.buf, *pr = presence.buf, *po = polarity.buf;
    for (Py_ssize_t j = 0; j < p; j++)
        if (di[j] < 0 || di[j] >= k || pr[j] < 0 || pr[j] >= k || po[j] < 0 || po[j] >= k) {
            PyErr_SetString(PyExc_ValueError, "pair_scores: a score index is out of range");
            goto done;
        }
    if (!(raw = PyMem_Malloc((size_t)(p ? p : 1) * sizeof(double)))) {
        PyErr_NoMemory();
        goto done;
    }
    if (!(probs = PyList_New(n_docs)) || !(decided = PyList_New(n_docs)) || !(rest = PyList_New(n_rows - n_docs)))
        goto done;
    const double *L = lin.buf, *sg = sign.buf, *A = a.buf, *C = c.buf, *T = thr.buf;
    const uint8_t *U = uni.buf, *X = lex.buf;
    for (Py_ssize_t i = 0; i < n_rows; i++) {
        const double *row = L + i * k;
        for (Py_ssize_t j = 0; j < p; j++) {
            double q = row[pr[j]], o = row[po[j]] * sg[j];
            raw[j] = row[di[j]] + (o < q ? o : q); /* np.minimum without NaNs: the smaller */
        }
        if (i >= n_docs) {
            PyObject *r = float_list(raw, p);
            if (!r) goto done;
            PyList_SET_ITEM(rest, i - n_docs, r);
            continue;
        }
        PyObject *js = PyList_New(0);
        if (!js) goto done;
        PyList_SET_ITEM(decided, i, js);
        for (Py_ssize_t j = 0; j < p; j++) {
            double t = raw[j] * A[j] + C[j];
            t = t < -35.0 ? -35.0 : t > 35.0 ? 35.0 : t;
            raw[j] = 1.0 / (1.0 + exp(-t));
            if (raw[j] >= T[j] || (U[j] && X[i * p + j])) {
                PyObject *jj = PyLong_FromSsize_t(j);
                if (!jj || PyList_Append(js, jj) < 0) {
                    Py_XDECREF(jj);
                    goto done;
                }
                Py_DECREF(jj);
            }
        }
        PyObject *r = float_list(raw, p);
        if (!r) goto done;
        PyList_SET_ITEM(probs, i, r);
    }
    result = PyTuple_Pack(3, probs, decided, rest);
done:
    Py_XDECREF(probs);
    Py_XDECREF(decided);
    Py_XDECREF(rest);
    PyMem_Free(raw);
    Py_buffer *all[] = {&lin, &direct, &presence, &polarity, &sign, &a, &c, &thr, &uni, &lex};
    release(all, sizeof all / sizeof all[0]);
    return result;
}

/* ------------------------------------------------------------------ text folding and clauses */

/* fold_width(text) -> str: full-width ASCII forms (U+FF01..U+FF5E) to ASCII and the ideographic
 * space (U+3000) to a space, the rest as it is (normalize.py). It was str.translate with a dict
 * of those code points, which looks every character up: 2.1 of normalize's 5.5 µs a bench review
 * (3.5 with this). `text` itself when nothing changes. */
static PyObject *fold_width(PyObject *self, PyObject *arg) {
    if (!PyUnicode_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "fold_width() takes a str");
        return NULL;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(arg), i = 0;
    int kind = PyUnicode_KIND(arg);
    const void *data = PyUnicode_DATA(arg);
    if (kind != PyUnicode_1BYTE_KIND) { /* a 1-byte string holds nothing above U+00FF */
        for (; i < n; i++) {
            Py_UCS4 c = PyUnicode_READ(kind, data, i);
            if (c == 0x3000 || (c >= 0xFF01 && c <= 0xFF5E))
                break;
        }
    }
    if (kind == PyUnicode_1BYTE_KIND || i == n) {
        Py_INCREF(arg);
        return arg;
    }
    Py_UCS4 *buf = PyMem_Malloc((size_t)n * sizeof(Py_UCS4));
    if (buf == NULL)
        return PyErr_NoMemory();
    for (Py_ssize_t j = 0; j < n; j++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, j);
        buf[j] = c == 0x3000 ? 0x20 : (c >= 0xFF01 && c <= 0xFF5E) ? c - 0xFEE0 : c;
    }
    PyObject *out = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, buf, n);
    PyMem_Free(buf);
    return out;
}

/* Is text[i] part of a clause break (segment.CLAUSE_BREAK)? One of ,!?;:~…。！？；，、, whitespace
 * (as re's \s: Py_UNICODE_ISSPACE), or a '.' unless it stands between two decimal digits (re's
 * \d: Py_UNICODE_ISDECIMAL), as in 8.0. */
static int clause_break_at(int kind, const void *data, Py_ssize_t n, Py_ssize_t i) {
    Py_UCS4 c = PyUnicode_READ(kind, data, i);
    switch (c) {
    case ',': case '!': case '?': case ';': case ':': case '~':
    case 0x2026: case 0x3002: case 0xFF01: case 0xFF1F: case 0xFF1B: case 0xFF0C: case 0x3001:
        return 1;
    case '.':
        return !(i > 0 && i + 1 < n && Py_UNICODE_ISDECIMAL(PyUnicode_READ(kind, data, i - 1)) &&
                 Py_UNICODE_ISDECIMAL(PyUnicode_READ(kind, data, i + 1)));
    default:
        return Py_UNICODE_ISSPACE(c);
    }
}

/* clause_gaps(text) -> [(start, end), ...]: the non-empty stretches of text between runs of
 * clause-break characters, in order (segment.clauses before contrast words cut them): what
 * CLAUSE_BREAK.finditer gives between its matches, without the regex engine (2.7 of the 3.9 µs
 * clauses() took a review). */
static PyObject *clause_gaps(PyObject *self, PyObject *arg) {
    if (!PyUnicode_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "clause_gaps() takes a str");
        return NULL;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(arg);
    int kind = PyUnicode_KIND(arg);
    const void *data = PyUnicode_DATA(arg);
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    Py_ssize_t i = 0;
    while (i < n) {
        while (i < n && clause_break_at(kind, data, n, i))
            i++;
        Py_ssize_t start = i;
        while (i < n && !clause_break_at(kind, data, n, i))
            i++;
        if (i > start) {
            PyObject *gap = Py_BuildValue("(nn)", start, i);
            if (gap == NULL || PyList_Append(out, gap) < 0) {
                Py_XDECREF(gap);
                Py_DECREF(out);
                return NULL;
            }
            Py_DECREF(gap);
        }
    }
    return out;
}

static PyMethodDef module_methods[] = {
    {"fold_width", fold_width, METH_O, "full-width ASCII forms and U+3000 to ASCII (see the function)"},
    {"clause_gaps", clause_gaps, METH_O, "the stretches of a text between clause breaks (see the function)"},
    {"scan_terms", scan_terms, METH_VARARGS, "lexicon terms on token boundaries (see the function)"},
    {"clause_rows", clause_rows, METH_VARARGS, "a text's clause rows for the aspect model (see the function)"},
    {"add_dense", add_dense, METH_VARARGS, "out += x @ weights over the nonzeros of x, in float32 (see the module)"},
    {"tfidf_product", tfidf_product, METH_VARARGS, "per-row tf-idf, L2 per group, times weights (see the module)"},
    {"sentiment_margins", sentiment_margins, METH_VARARGS, "the sentiment model's margins (see the module)"},
    {"add_lex", add_lex, METH_VARARGS, "the aspect model's lexicon block times its weights (see the function)"},
    {"pair_scores", pair_scores, METH_VARARGS, "the aspect model's pair scores, probabilities and decisions (see the function)"},
    {NULL}};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_native",
    .m_doc = "The feature pass's hot loops (see app/pipeline/_native.c).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__native(void) {
    if (PyType_Ready(&VocabType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    if (PyModule_AddObjectRef(m, "Vocab", (PyObject *)&VocabType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
