"""Generated training pairs: one prompt perturbed on one side.

Positives change only the surface, so the cached answer still answers: case, punctuation,
whitespace, typos, contractions, chat shorthand, question frames, politeness and verbosity
wrappers, coordinations in the other order. Near-misses change what is asked: negation,
antonymous actions, numbers, units, dates and times, direction and role swaps, entity
swaps, added constraints, scope, time shifts.

Every generator takes a prompt and a `random.Random` and returns the perturbed prompt, or
None when it does not apply (no number to change, no known verb to flip). The word tables
are written for this file; deja's own rule tables (`crates/deja-core/src/verify/`) stay
the vetoes, these teach the pair model the same kinds of differences in context.
"""

import random
import re
import unicodedata

# --------------------------------------------------------------------------------------
# Word tables

ANTONYMS = [
    ("enable", "disable"), ("turn on", "turn off"), ("switch on", "switch off"),
    ("read", "write"), ("open", "close"), ("lock", "unlock"), ("pin", "unpin"),
    ("mute", "unmute"), ("follow", "unfollow"), ("subscribe", "unsubscribe"),
    ("block", "unblock"), ("archive", "unarchive"), ("hide", "unhide"), ("add", "remove"),
    ("install", "uninstall"), ("upload", "download"), ("import", "export"),
    ("increase", "decrease"), ("raise", "lower"), ("start", "stop"), ("buy", "sell"),
    ("send", "receive"), ("deposit", "withdraw"), ("encrypt", "decrypt"),
    ("compress", "decompress"), ("zip", "unzip"), ("join", "leave"), ("accept", "decline"),
    ("approve", "reject"), ("allow", "deny"), ("show", "hide"), ("maximize", "minimize"),
    ("upgrade", "downgrade"), ("activate", "deactivate"), ("connect", "disconnect"),
    ("mount", "unmount"), ("login", "logout"), ("log in", "log out"), ("sign in", "sign out"),
    ("sign up", "cancel"), ("before", "after"), ("above", "below"), ("first", "last"),
    ("minimum", "maximum"), ("min", "max"), ("cheapest", "most expensive"),
    ("fastest", "slowest"), ("largest", "smallest"), ("highest", "lowest"),
    ("oldest", "newest"), ("earliest", "latest"), ("longest", "shortest"),
    ("best", "worst"), ("more", "less"), ("faster", "slower"), ("bigger", "smaller"),
    ("import", "export"), ("inbound", "outbound"), ("incoming", "outgoing"),
    ("include", "exclude"), ("merge", "split"), ("freeze", "unfreeze"),
    ("pause", "resume"), ("save", "delete"), ("create", "delete"), ("expand", "collapse"),
    ("push", "pull"), ("ascending", "descending"), ("left", "right"), ("up", "down"),
    ("north", "south"), ("east", "west"), ("hot", "cold"), ("true", "false"),
    ("public", "private"), ("online", "offline"), ("input", "output"), ("win", "lose"),
    ("refund", "charge"), ("credit", "debit"), ("pay", "get paid"), ("lend", "borrow"),
    ("rent", "buy"), ("import", "export"), ("serialize", "deserialize"),
    ("encode", "decode"), ("uppercase", "lowercase"), ("horizontal", "vertical"),
    ("start", "end"), ("begin", "finish"), ("arrive", "depart"), ("arrival", "departure"),
    ("male", "female"), ("men", "women"), ("day", "night"), ("morning", "evening"),
    ("summer", "winter"), ("inside", "outside"), ("import", "export"),
    ("allowed", "forbidden"), ("legal", "illegal"), ("possible", "impossible"),
    ("safe", "dangerous"), ("healthy", "unhealthy"), ("success", "failure"),
]

# Words of one kind: replacing one with another asks about something else.
ENTITY_SETS = [
    ["card", "bank transfer", "PayPal", "Apple Pay", "cash", "cheque"],
    ["Python", "JavaScript", "Rust", "Java", "Go", "C++", "TypeScript", "Ruby"],
    ["Windows", "macOS", "Linux", "Android", "iOS", "Ubuntu"],
    ["Chrome", "Firefox", "Safari", "Edge"],
    ["France", "Germany", "Spain", "Italy", "Japan", "Canada", "Brazil", "India", "China",
     "Mexico", "Australia", "the Netherlands", "Belgium", "Switzerland"],
    ["Paris", "London", "Berlin", "Madrid", "Rome", "Tokyo", "Amsterdam", "New York",
     "Chicago", "Toronto", "Sydney", "Beijing", "Shanghai", "Brussels", "Lyon"],
    ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
    ["January", "February", "March", "April", "May", "June", "July", "August",
     "September", "October", "November", "December"],
    ["email", "SMS", "phone", "chat", "letter"],
    ["iPhone", "Samsung Galaxy", "Pixel", "iPad", "MacBook"],
    ["Postgres", "MySQL", "SQLite", "MongoDB", "Redis"],
    ["dollars", "euros", "pounds", "yen"],
    ["checking account", "savings account", "credit card", "debit card"],
    ["flight", "train", "bus", "hotel", "car rental"],
    ["Spotify", "Netflix", "YouTube", "Instagram", "WhatsApp", "Slack", "Zoom"],
    ["dog", "cat", "rabbit", "horse", "parrot"],
    ["coffee", "tea", "beer", "wine", "milk"],
    ["Excel", "Word", "PowerPoint", "Google Sheets", "Google Docs"],
]

UNITS = [("kg", "lb"), ("km", "miles"), ("Celsius", "Fahrenheit"), ("meters", "feet"),
         ("liters", "gallons"), ("MB", "GB"), ("GB", "TB"), ("minutes", "hours"),
         ("hours", "days"), ("days", "weeks"), ("weeks", "months"), ("USD", "EUR"),
         ("cm", "inches"), ("grams", "ounces")]

TIME_SHIFTS = [("today", "tomorrow"), ("yesterday", "today"), ("last week", "next week"),
               ("this week", "next week"), ("last month", "next month"),
               ("this year", "last year"), ("tonight", "tomorrow night"),
               ("now", "later"), ("in the morning", "in the evening")]

SCOPES = [("one of my", "all of my"), ("some", "all"), ("any", "all"),
          ("the first", "every"), ("one", "all"), ("single", "multiple"),
          ("a file", "all files"), ("a message", "all messages"), ("a photo", "all photos"),
          ("an item", "all items"), ("a user", "all users"), ("my account", "all accounts")]

CONSTRAINTS = [
    "after check-in closes", "without losing my data", "on Android", "on iPhone",
    "for free", "without a credit card", "from abroad", "in bulk", "for a business account",
    "for someone else", "without internet", "after the deadline", "on weekends",
    "if I am under 18", "with a joint account", "in another currency",
    "without admin rights", "in the mobile app", "for a deceased relative",
    "while travelling", "before it expires", "if it was already shipped",
    "for more than one person", "in Python 2", "on a shared computer",
    "without an appointment", "with a criminal record", "during a sale",
    "if I lost the receipt", "for an international order",
]

NEGATABLE = [
    ("can", "can't"), ("could", "couldn't"), ("should", "shouldn't"),
    ("would", "wouldn't"), ("will", "won't"), ("is", "isn't"), ("are", "aren't"),
    ("was", "wasn't"), ("were", "weren't"), ("does", "doesn't"), ("do", "don't"),
    ("did", "didn't"), ("has", "hasn't"), ("have", "haven't"), ("must", "mustn't"),
]

CONTRACTIONS = [("do not", "don't"), ("does not", "doesn't"), ("can not", "can't"),
                ("cannot", "can't"), ("is not", "isn't"), ("are not", "aren't"),
                ("i am", "i'm"), ("it is", "it's"), ("what is", "what's"),
                ("how is", "how's"), ("where is", "where's"), ("who is", "who's"),
                ("that is", "that's"), ("there is", "there's"), ("i have", "i've"),
                ("you are", "you're"), ("we are", "we're"), ("they are", "they're"),
                ("i would", "i'd"), ("i will", "i'll"), ("let us", "let's"),
                ("did not", "didn't"), ("will not", "won't"), ("would not", "wouldn't")]

SHORTHAND = [("you", "u"), ("your", "ur"), ("please", "pls"), ("thanks", "thx"),
             ("are", "r"), ("because", "bc"), ("to", "2"), ("for", "4"),
             ("tomorrow", "tmrw"), ("message", "msg"), ("information", "info"),
             ("without", "w/o"), ("with", "w/"), ("what", "wat"), ("people", "ppl"),
             ("why", "y"), ("by the way", "btw"), ("as soon as possible", "asap"),
             ("though", "tho"), ("really", "rly"), ("okay", "ok"), ("probably", "prob"),
             ("something", "smth"), ("tonight", "tonite"), ("know", "kno"),
             ("hasn't", "hasnt"), ("doesn't", "doesnt"), ("don't", "dont"), ("can't", "cant"),
             ("isn't", "isnt"), ("won't", "wont"), ("i'm", "im"), ("what's", "whats")]

# Question frames that ask the same thing: (pattern, replacements).
FRAMES = [
    (r"^how do i ", ["how can i ", "how should i ", "what's the way to ", "how to ",
                     "what is the best way to ", "how would i ", "how do you "]),
    (r"^how can i ", ["how do i ", "how to ", "is there a way to ", "what do i do to "]),
    (r"^how to ", ["how do i ", "how can i ", "what are the steps to "]),
    (r"^what is ", ["what's ", "tell me what ", "can you tell me what "]),
    (r"^can i ", ["am i able to ", "is it possible to ", "is it possible for me to ",
                  "could i "]),
    (r"^where can i ", ["where do i ", "where should i ", "where is it possible to "]),
    (r"^i want to ", ["i'd like to ", "i need to ", "i wish to ", "help me "]),
    (r"^why is ", ["why's ", "what is the reason "]),
    (r"^is it possible to ", ["can i ", "can you "]),
]

# Words and phrases that ask for the same thing in chat prompts (either direction).
SYNONYMS = [
    ("delete", "remove"), ("change", "update"), ("change", "modify"), ("update", "edit"),
    ("package", "parcel"), ("quick", "fast"), ("quickly", "fast"), ("buy", "purchase"),
    ("fix", "repair"), ("help", "assist"), ("find", "locate"), ("need", "require"),
    ("use", "utilize"), ("big", "large"), ("small", "little"), ("movie", "film"),
    ("phone", "mobile"), ("picture", "photo"), ("make", "create"), ("choose", "pick"),
    ("choose", "select"), ("easy", "simple"), ("problem", "issue"), ("error", "problem"),
    ("check", "verify"), ("set up", "configure"), ("show", "display"),
    ("get", "receive"), ("get", "obtain"), ("begin", "start"), ("finish", "complete"),
    ("shop", "store"), ("cost", "price"), ("tell me", "let me know"), ("explain", "describe"),
    ("arrive", "be delivered"), ("money", "funds"), ("trip", "journey"),
    ("vacation", "holiday"), ("cellphone", "mobile phone"), ("laptop", "notebook"),
    ("sign up", "register"), ("log in", "sign in"), ("login", "sign-in"),
    ("email", "e-mail"), ("wifi", "Wi-Fi"), ("good", "decent"),
    ("best", "top"), ("idea", "suggestion"), ("recommend", "suggest"),
    ("meal", "dish"), ("dinner", "supper"), ("tonight", "this evening"),
    ("cheap", "inexpensive"), ("hard", "difficult"), ("correct", "right"),
    ("allowed", "permitted"), ("look for", "search for"),
    ("talk to", "speak to"), ("speak with", "talk with"), ("kids", "children"),
    ("home", "house"), ("job", "work"), ("doctor", "physician"), ("medicine", "medication"),
    ("refund", "reimbursement"),
]

# Phrases at the end of a question that may stand at its front ("How do I cancel X on my
# iPhone?" / "On my iPhone, how do I cancel X?").
FRONTABLE = r"(?:in|on|at|for|with|using|via|during|after|before|without|from|when|while|if)"

# Requests that ask the same as a question: (pattern on the lowered text, rewrites; \1 is
# the rest).
IMPERATIVES = [
    (r"^(?:can|could|would|will) you (?:please )?(.+?)[?.! ]*$",
     ["\\1", "please \\1", "\\1 for me", "i'd like you to \\1", "i need you to \\1"]),
    (r"^how (?:do|can) i (.+?)[?.! ]*$",
     ["show me how to \\1", "explain how to \\1", "tell me how to \\1",
      "i need to know how to \\1", "what are the steps to \\1?",
      "would you be so kind as to tell me how to \\1?",
      "could you kindly explain how i can \\1?", "i'd appreciate it if you could tell me how to \\1"]),
    (r"^(?:what is|what's) (.+?)[?.! ]*$",
     ["could you please tell me what \\1 is?", "explain \\1", "define \\1",
      "i'd like to know what \\1 is", "might i ask what \\1 is?"]),
    (r"^(?:please )?(write|translate|summarize|summarise|explain|list|give me|suggest|"
     r"recommend|convert|calculate|draft|generate|create|tell me|show me) (.+?)[?.! ]*$",
     ["can you \\1 \\2?", "could you \\1 \\2?", "please \\1 \\2", "would you \\1 \\2?",
      "i'd like you to \\1 \\2", "could you please \\1 \\2?"]),
]

PREFIXES = ["please ", "hi, ", "hello, ", "hey, ", "quick question: ", "can you tell me ",
            "i was wondering, ", "could you help me: ", "excuse me, ", "sorry to bother you, ",
            "question - ", "good morning, "]
SUFFIXES = [" please", " thanks", " thank you", ", thanks in advance", " asap", "?",
            " please help", ", any idea?", " thx"]

FUNCTION = set("""a an the of to in on for at by with from and or but if is are was were be
been do does did i you he she it we they my your his her its our their me him them this that
these those what which who whom how why when where can could will would should may might must
have has had not no so as than then there here about into over under up down out""".split())

KEYBOARD = {
    "a": "qwsz", "b": "vghn", "c": "xdfv", "d": "serfcx", "e": "wsdr", "f": "drtgvc",
    "g": "ftyhbv", "h": "gyujnb", "i": "ujko", "j": "huikmn", "k": "jiolm", "l": "kop",
    "m": "njk", "n": "bhjm", "o": "iklp", "p": "ol", "q": "wa", "r": "edft", "s": "awedxz",
    "t": "rfgy", "u": "yhji", "v": "cfgb", "w": "qase", "x": "zsdc", "y": "tghu", "z": "asx",
}

WORD = re.compile(r"[A-Za-z][A-Za-z']*")


def _sub_word(text, old, new, rng=None):
    """Replaces whole-word `old` (case-insensitive) by `new`, keeping a leading capital."""
    pat = re.compile(r"(?<![A-Za-z'])" + re.escape(old) + r"(?![A-Za-z'])", re.IGNORECASE)
    matches = list(pat.finditer(text))
    if not matches:
        return None
    m = (rng.choice(matches) if rng else matches[0])
    rep = new
    if m.group(0)[:1].isupper() and new[:1].islower():
        rep = new[:1].upper() + new[1:]
    return text[:m.start()] + rep + text[m.end():]


def _either(pairs, text, rng):
    opts = []
    for x, y in pairs:
        for old, new in ((x, y), (y, x)):
            if re.search(r"(?<![A-Za-z'])" + re.escape(old) + r"(?![A-Za-z'])", text, re.I):
                opts.append((old, new))
    if not opts:
        return None
    old, new = rng.choice(opts)
    return _sub_word(text, old, new, rng)


def _content_words(text):
    return [m for m in WORD.finditer(text) if m.group(0).lower() not in FUNCTION
            and len(m.group(0)) >= 4]


# --------------------------------------------------------------------------------------
# Positives: the same request

def case_punct(text, rng, strip="?.! ", ends=("?", "??", ".", "!", " ?", "")):
    t = text
    r = rng.random()
    if r < 0.4:
        t = t.lower()
    elif r < 0.5:
        t = t.upper() if len(t) < 60 else t.lower()
    elif r < 0.8:
        t = t[:1].upper() + t[1:]
    t = t.rstrip(strip)
    if rng.random() < 0.5:
        t += rng.choice(ends)
    if rng.random() < 0.3:
        t = re.sub(r",", "", t)
    if rng.random() < 0.2:
        t = "  " + t.replace(" ", "  ", 1) + " "
    if rng.random() < 0.25:
        t = re.sub(r"(?<=[A-Za-z])'(?=(?:s|t|re|ve|ll|d|m)\b)", "", t)
    return t if t.strip() != text.strip() else None


CJK = re.compile(r"[\u3000-\u9fff\uac00-\ud7af\uff00-\uffef]")


def _other_words(text):
    """Words of a prompt in another language that a slip of the keyboard can touch: four
    letters or more, not Chinese, Japanese or Korean (there one character more or less is
    another word, not a typo)."""
    return [m for m in re.finditer(r"[^\W\d_]{4,}", text) if not CJK.search(m.group(0))]


def _bare(c):
    """A Latin letter without its diacritics ("é" -> "e", "ł" -> "l", "ß" -> "ss")."""
    if c in "łŁßøØ":
        return {"ł": "l", "Ł": "L", "ß": "ss", "ø": "o", "Ø": "O"}[c]
    if not unicodedata.name(c, "").startswith("LATIN"):
        return c
    return "".join(d for d in unicodedata.normalize("NFD", c) if not unicodedata.combining(d))


def accents(text, rng):
    """Diacritics left out, as people type on a keyboard without them: in the whole
    prompt or in one word."""
    words = [m for m in re.finditer(r"\w+", text) if any(_bare(c) != c for c in m.group(0))]
    if not words:
        return None
    if rng.random() < 0.5:
        return "".join(_bare(c) for c in text)
    m = rng.choice(words)
    return text[:m.start()] + "".join(_bare(c) for c in m.group(0)) + text[m.end():]


def case_punct_any(text, rng):
    """`case_punct` that also knows the full-width punctuation of Chinese and Japanese."""
    if CJK.search(text):
        return case_punct(text, rng, strip="?.! ？。！", ends=("？", "?", "。", ""))
    return case_punct(text, rng)


def typo(text, rng):
    return _typo(text, rng, _content_words(text))


def typo_any(text, rng):
    """`typo` in a prompt of any language (`_other_words`)."""
    return _typo(text, rng, _other_words(text))


def _typo(text, rng, words):
    if not words:
        return None
    n = 1 if rng.random() < 0.7 else 2
    t = text
    for m in rng.sample(words, min(n, len(words))):
        w = m.group(0)
        i = rng.randrange(1, len(w))
        kind = rng.randrange(5)
        if kind == 0:
            nw = w[:i - 1] + w[i] + w[i - 1] + w[i + 1:]          # swap
        elif kind == 1:
            nw = w[:i] + w[i + 1:]                                  # drop
        elif kind == 2:
            nw = w[:i] + w[i] + w[i:]                               # double
        else:
            c = w[i].lower()
            nc = rng.choice(KEYBOARD.get(c, c))
            nw = w[:i] + nc + w[i + 1:]                              # neighbour key
        t = t.replace(w, nw, 1)
    return t if t != text else None


def contraction(text, rng):
    low = text.lower()
    opts = [(x, y) for x, y in CONTRACTIONS if re.search(r"\b" + re.escape(x) + r"\b", low)]
    opts += [(y, x) for x, y in CONTRACTIONS if re.search(r"(?<![a-z'])" + re.escape(y) + r"(?![a-z'])", low)]
    if not opts:
        return None
    old, new = rng.choice(opts)
    return _sub_word(text, old, new)


def shorthand(text, rng):
    t = text
    changed = False
    for full, short in SHORTHAND:
        if rng.random() < 0.6:
            nt = _sub_word(t, full, short)
            if nt:
                t, changed = nt, True
    if not changed:
        return None
    return t.lower() if rng.random() < 0.7 else t


def frame(text, rng):
    low = text.lower()
    for pat, reps in FRAMES:
        if re.match(pat, low):
            rep = rng.choice(reps)
            return re.sub(pat, rep, low, count=1)
    return None


def wrap(text, rng):
    t = text
    if rng.random() < 0.6:
        t = rng.choice(PREFIXES) + (t[:1].lower() + t[1:])
    if rng.random() < 0.6 or t == text:
        t = t.rstrip("?.! ") + rng.choice(SUFFIXES)
    return t


def coordination(text, rng):
    m = re.search(r"\b(\w+(?: \w+)?) (and|or) (\w+(?: \w+)?)\b", text)
    if not m:
        return None
    x, conj, y = m.group(1), m.group(2), m.group(3)
    if x.lower() in FUNCTION or y.lower() in FUNCTION or x.lower() == y.lower():
        return None
    # Only short noun-like coordinations ("cats and dogs"), not clauses.
    if any(w.lower() in FUNCTION for w in (x.split() + y.split())):
        return None
    return text[:m.start()] + f"{y} {conj} {x}" + text[m.end():]


def synonym(text, rng):
    return _either(SYNONYMS, text, rng)


def front(text, rng):
    """A trailing phrase moved to the front of the question, or a fronted one to its end."""
    body = text.rstrip()
    end = body[len(body.rstrip("?.!")):] or ""
    body = body.rstrip("?.!").rstrip()
    m = re.match(r"^(" + FRONTABLE + r" [^,]{2,60}), (.+)$", body, re.IGNORECASE)
    if m:
        phrase, rest = m.group(1), m.group(2)
        return rest[:1].upper() + rest[1:] + " " + phrase[:1].lower() + phrase[1:] + end
    m = re.match(r"^(what(?:'s| is) the \w+ way) (to .{4,60})$", body, re.IGNORECASE)
    if m:
        return m.group(2)[:1].upper() + m.group(2)[1:] + ", " + m.group(1).lower() + end
    # The last frontable phrase of at most six words, after a question that does not end
    # in a function word ("How many calories are | in a banana?" stays).
    starts = [mm.start() for mm in re.finditer(r" " + FRONTABLE + r" ", body, re.IGNORECASE)]
    for at in reversed(starts):
        phrase, rest = body[at + 1:], body[:at]
        words = rest.split()
        if (len(phrase.split()) <= 6 and "," not in phrase and len(words) >= 3
                and words[-1].lower() not in FUNCTION):
            return phrase[:1].upper() + phrase[1:] + ", " + rest[:1].lower() + rest[1:] + end
    return None


def imperative(text, rng):
    low = text.lower().strip()
    for pat, reps in IMPERATIVES:
        m = re.match(pat, low)
        if m:
            out = m.expand(rng.choice(reps))
            return out[:1].upper() + out[1:] if rng.random() < 0.5 else out
    return None


POSITIVE = {"case_punct": case_punct, "typo": typo, "contraction": contraction,
            "shorthand": shorthand, "frame": frame, "wrap": wrap,
            "coordination": coordination, "synonym": synonym, "front": front,
            "imperative": imperative}


# --------------------------------------------------------------------------------------
# Near-misses: a different request

def negation(text, rng):
    low = text.lower()
    opts = []
    for pos, neg in NEGATABLE:
        if re.search(r"(?<![a-z'])" + re.escape(neg) + r"(?![a-z'])", low):
            opts.append((neg, pos))
        elif re.search(r"(?<![a-z'])" + re.escape(pos) + r"(?![a-z'])", low):
            opts.append((pos, neg))
    # "How do I ..." does not negate into a question anyone asks, and "Can't I ...?" often
    # asks what "Can I ...?" asks: only an auxiliary inside the sentence is negated
    # ("Why is my card declined?" / "Why isn't my card declined?").
    opts = [(o, n) for o, n in opts
            if not re.search(r"\b(how|what|where|which)\s+" + re.escape(o) + r"\b", low)
            and not low.startswith(o + " ")]
    if not opts:
        return None
    old, new = rng.choice(opts)
    return _sub_word(text, old, new)


def without(text, rng):
    """"with" <-> "without": the other condition."""
    return _either([("with", "without")], text, rng)


def antonym(text, rng):
    return _either(ANTONYMS, text, rng)


def number(text, rng):
    nums = list(re.finditer(r"\d+(?:[.,]\d+)?", text))
    if not nums:
        # Spell a count into a sentence that has none: "my order" -> "my 2 orders" is not
        # safe in general, so only numbers already present are changed.
        return None
    m = rng.choice(nums)
    s = m.group(0)
    r = rng.random()
    digits = [c for c in s if c.isdigit()]
    if len(digits) >= 3 and r < 0.4:
        # Transpose two neighbouring digits (order #4821 -> #4812).
        idx = [i for i, c in enumerate(s) if c.isdigit()]
        for _ in range(5):
            k = rng.randrange(len(idx) - 1)
            i, j = idx[k], idx[k + 1]
            if s[i] != s[j]:
                new = s[:i] + s[j] + s[i + 1:j] + s[i] + s[j + 1:]
                break
        else:
            return None
    else:
        try:
            v = float(s.replace(",", ""))
        except ValueError:
            return None
        nv = v + rng.choice([1, -1, 2, 10, -10]) if v > 10 else v + rng.choice([1, 2, 3])
        if nv < 0 or nv == v:
            nv = v + 1
        new = str(int(nv)) if nv == int(nv) else f"{nv:.2f}"
    return text[:m.start()] + new + text[m.end():]


def unit(text, rng):
    return _either(UNITS, text, rng)


def time_shift(text, rng):
    return _either(TIME_SHIFTS, text, rng)


def scope(text, rng):
    return _either(SCOPES, text, rng)


def entity(text, rng):
    opts = []
    for group in ENTITY_SETS:
        for e in group:
            if re.search(r"(?<![A-Za-z])" + re.escape(e) + r"(?![A-Za-z])", text, re.I):
                opts.append((e, group))
    if not opts:
        return None
    e, group = rng.choice(opts)
    other = rng.choice([g for g in group if g.lower() != e.lower()])
    return _sub_word(text, e, other, rng)


def constraint(text, rng):
    t = text.rstrip("?.! ")
    return t + " " + rng.choice(CONSTRAINTS) + ("?" if text.rstrip().endswith("?") else "")


def role_swap(text, rng):
    # "from X to Y", "X to Y", "X's Y"/"Y's X", "X vs Y", "X than Y", "X into Y".
    pats = [r"\bfrom ([\w#-]+(?: [\w#-]+)?) to ([\w#-]+(?: [\w#-]+)?)\b",
            r"\b([A-Z][\w-]+) to ([A-Z][\w-]+)\b",
            r"\b(\w+) into (\w+)\b", r"\b(\w+) than (\w+)\b",
            r"\b(\w+) (?:vs\.?|versus) (\w+)\b"]
    for p in pats:
        m = re.search(p, text)
        if m:
            x, y = m.group(1), m.group(2)
            if x.lower() == y.lower() or x.lower() in FUNCTION or y.lower() in FUNCTION:
                continue
            s = m.group(0)
            swapped = s.replace(x, "\0").replace(y, x).replace("\0", y)
            if swapped != s:
                return text[:m.start()] + swapped + text[m.end():]
    # Two role nouns in one prompt: swap them.
    roles = ["buyer", "seller", "landlord", "tenant", "employer", "employee", "parent",
             "child", "sender", "recipient", "client", "server", "teacher", "student",
             "doctor", "patient", "husband", "wife", "driver", "passenger", "host", "guest"]
    present = [r for r in roles if re.search(r"\b" + r + r"\b", text, re.I)]
    if len(present) >= 2:
        x, y = rng.sample(present, 2)
        return re.sub(r"\b(" + x + "|" + y + r")\b",
                      lambda m: y if m.group(0).lower() == x else x, text, flags=re.I)
    return None


NEGATIVE = {"negation": negation, "without": without, "antonym": antonym, "number": number,
            "unit": unit, "time_shift": time_shift, "scope": scope, "entity": entity,
            "constraint": constraint, "role_swap": role_swap}


OTHER_LANGUAGE = set("""comment où ma mon mes est les des une pour pourquoi quels quelles
puis-je combien livrez-vous hoe ik mijn wat zijn jullie waar het een naar voor waarom kan
ze wij""".split())


def is_english(text):
    """Whether the English-only generators may touch `text` (French and Dutch prompts get
    only the language-free ones: case, punctuation, typos, numbers)."""
    words = re.findall(r"[\w'-]+", text.lower())
    return not any(w in OTHER_LANGUAGE for w in words) and not re.search(r"[à-ÿ]", text)


ANY_LANGUAGE = {"case_punct", "typo", "number"}
ANY_SCRIPT = {"case_punct": case_punct_any, "typo": typo_any}


def perturb(text, kinds, rng, tries=3, other_language=False):
    """One perturbation of `text` by one of `kinds` (name -> function), or None.
    `other_language`: the prompt is known not to be English."""
    funcs = kinds
    if other_language:
        # Prompts known to be in another language get the generators that know no
        # language, in their versions for any script, and left-out accents.
        funcs = {k: ANY_SCRIPT.get(k, f) for k, f in kinds.items() if k in ANY_LANGUAGE}
        if kinds is POSITIVE:
            funcs["accents"] = accents
    elif not is_english(text):
        funcs = {k: f for k, f in kinds.items() if k in ANY_LANGUAGE}
    names = list(funcs)
    if not names:
        return None
    for _ in range(tries):
        name = rng.choice(names)
        out = funcs[name](text, rng)
        if out and out.strip() and out.strip().lower() != text.strip().lower() or (
                out and name in ("case_punct", "wrap") and out != text):
            return name, out
    return None


def generate(texts, n, seed=0, other_language=False):
    """`n` generated pairs from `texts`: (a, b, label, kind), about half near-misses.

    A positive sometimes stacks two surface changes; a near-miss is sometimes dressed in
    one, so the model cannot tell them apart by the surface change alone.
    """
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        t = rng.choice(texts)
        # (label, the perturbations that make the pair, the chance of a surface change on top)
        label, kinds, dressed = (1, POSITIVE, 0.35) if rng.random() < 0.5 else (0, NEGATIVE, 0.4)
        got = perturb(t, kinds, rng, other_language=other_language)
        if not got:
            continue
        kind, b = got
        if rng.random() < dressed:
            more = perturb(b, POSITIVE, rng, other_language=other_language)
            if more:
                kind, b = kind + "+" + more[0], more[1]
        if rng.random() < 0.5:
            out.append((t, b, label, kind))
        else:
            out.append((b, t, label, kind))
    return out


if __name__ == "__main__":
    import sys
    from prompts import CHAT
    rng_texts = CHAT
    for a, b, label, kind in generate(rng_texts, int(sys.argv[1]) if len(sys.argv) > 1 else 40):
        print(f"{label} {kind:<24} {a!r:<60} {b!r}")
