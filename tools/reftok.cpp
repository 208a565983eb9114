// reftok: llama.cpp's tokenization of texts, as JSON in refdump's `tok` format plus two
// llama_detokenize results, loading only the vocabulary, with metadata overrides if asked (to
// check a tokenizer setting on a real vocabulary: every pre-tokenizer on SmolLM2's, a space
// prefix on Gemma's). Built and run by tools/make-goldens.sh.
//   reftok MODEL FILE [KEY=str:VALUE | KEY=bool:true|false | KEY=int:N]...
//   FILE: texts separated by a line holding only "\x1e"
#include "llama.h"
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

// A JSON string. A byte that does not start a lead-plus-continuation-bytes sequence is written as
// U+FFFD (refdump's rule; tools/make-goldens.sh then replaces what is still not UTF-8).
static std::string json_str(const std::string &s) {
    std::string o = "\"";
    for (size_t i = 0; i < s.size();) {
        unsigned char c = s[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        bool ok = len > 0 && i + len <= s.size();
        for (size_t k = 1; ok && k < len; k++) ok = ((unsigned char)s[i + k] >> 6) == 2;
        if (!ok) { o += "\\ufffd"; i++; continue; }
        if (len > 1) { o.append(s, i, len); i += len; continue; }
        if (c == '"') o += "\\\"";
        else if (c == '\\') o += "\\\\";
        else if (c == '\n') o += "\\n";
        else if (c == '\r') o += "\\r";
        else if (c == '\t') o += "\\t";
        else if (c < 0x20) { char b[8]; snprintf(b, sizeof b, "\\u%04x", c); o += b; }
        else o += (char)c;
        i++;
    }
    return o + "\"";
}

static std::vector<std::string> texts_of(const char *path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    const std::string all = ss.str(), sep = "\n\x1e\n";
    std::vector<std::string> out;
    size_t p = 0;
    for (;;) {
        size_t q = all.find(sep, p);
        if (q == std::string::npos) {
            if (p < all.size()) out.push_back(all.substr(p));
            return out;
        }
        out.push_back(all.substr(p, q - p));
        p = q + sep.size();
    }
}

static std::vector<llama_token> tokens(const llama_vocab *v, const std::string &t, bool add, bool parse) {
    int n = -llama_tokenize(v, t.data(), (int)t.size(), nullptr, 0, add, parse);
    std::vector<llama_token> out(n > 0 ? n : 0);
    if (n > 0) llama_tokenize(v, t.data(), (int)t.size(), out.data(), n, add, parse);
    return out;
}

// llama_detokenize of `toks`.
static std::string detokenize(const llama_vocab *v, const std::vector<llama_token> &toks, bool remove_special, bool unparse_special) {
    std::string out(toks.size() * 16 + 16, '\0');
    int n = llama_detokenize(v, toks.data(), (int)toks.size(), &out[0], (int)out.size(), remove_special, unparse_special);
    if (n < 0) {
        out.resize(-n);
        n = llama_detokenize(v, toks.data(), (int)toks.size(), &out[0], (int)out.size(), remove_special, unparse_special);
    }
    out.resize(n > 0 ? n : 0);
    return out;
}

static std::string id_list(const std::vector<llama_token> &v) {
    std::string o = "[";
    for (size_t i = 0; i < v.size(); i++) o += (i ? "," : "") + std::to_string(v[i]);
    return o + "]";
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: reftok MODEL FILE [KEY=TYPE:VALUE]...\n"); return 2; }
    llama_log_set([](ggml_log_level, const char *, void *) {}, nullptr);
    llama_backend_init();
    auto mp = llama_model_default_params();
    mp.vocab_only = true;
    std::vector<llama_model_kv_override> kv(argc - 3 + 1); // zeroed entry last
    memset(kv.data(), 0, kv.size() * sizeof kv[0]);
    for (int a = 3; a < argc; a++) {
        std::string arg = argv[a];
        size_t eq = arg.find('='), colon = arg.find(':', eq);
        if (eq == std::string::npos || colon == std::string::npos) { fprintf(stderr, "bad override %s\n", argv[a]); return 2; }
        auto &o = kv[a - 3];
        std::string key = arg.substr(0, eq), type = arg.substr(eq + 1, colon - eq - 1), val = arg.substr(colon + 1);
        snprintf(o.key, sizeof o.key, "%s", key.c_str());
        if (type == "str") { o.tag = LLAMA_KV_OVERRIDE_TYPE_STR; snprintf(o.val_str, sizeof o.val_str, "%s", val.c_str()); }
        else if (type == "bool") { o.tag = LLAMA_KV_OVERRIDE_TYPE_BOOL; o.val_bool = val == "true"; }
        else if (type == "int") { o.tag = LLAMA_KV_OVERRIDE_TYPE_INT; o.val_i64 = std::stoll(val); }
        else { fprintf(stderr, "bad override type %s\n", type.c_str()); return 2; }
    }
    if (argc > 3) mp.kv_overrides = kv.data();
    llama_model *model = llama_model_load_from_file(argv[1], mp);
    if (!model) { fprintf(stderr, "load failed\n"); return 1; }
    const llama_vocab *vocab = llama_model_get_vocab(model);
    auto texts = texts_of(argv[2]);
    printf("[\n");
    for (size_t i = 0; i < texts.size(); i++) {
        auto a = tokens(vocab, texts[i], false, false), b = tokens(vocab, texts[i], true, true);
        std::string detok;
        for (auto t : a) {
            char buf[512];
            int n = llama_token_to_piece(vocab, t, buf, sizeof buf, 0, true);
            if (n > 0) detok.append(buf, n);
        }
        // refdump's fields, then llama_detokenize of `tokens` (remove_special = false,
        // unparse_special = true) and of `tokens_add_special_parse_special` (true, false).
        printf("%s{\"text\":%s,\"tokens\":%s,\"tokens_add_special_parse_special\":%s,\"detokenized\":%s,"
               "\"llama_detokenize\":%s,\"llama_detokenize_remove_special\":%s}\n",
               i ? "," : "", json_str(texts[i]).c_str(), id_list(a).c_str(), id_list(b).c_str(), json_str(detok).c_str(),
               json_str(detokenize(vocab, a, false, true)).c_str(), json_str(detokenize(vocab, b, true, false)).c_str());
    }
    printf("]\n");
    llama_model_free(model);
    return 0;
}
