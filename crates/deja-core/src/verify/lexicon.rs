//! The word tables behind the verification rules, in English, French, Dutch and Chinese:
//! number words, units, negation markers and groups of mutually exclusive terms
//! (antonyms, weekdays, ...). Lookups are `match` statements or a hash map built once.

use std::collections::HashMap;
use std::sync::LazyLock;

use super::RejectReason;

/// The unit or currency attached to a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unit {
    None,
    Usd,
    Eur,
    Gbp,
    Yuan,
    Yen,
    /// "¥": yen or yuan.
    YenOrYuan,
    /// "pound(s)": sterling or weight.
    Pound,
    Lb,
    Rupee,
    Percent,
    Am,
    Pm,
    Hour,
    Minute,
    Second,
    Day,
    Week,
    Month,
    Year,
    Km,
    Mile,
    Meter,
    Cm,
    Mm,
    Kg,
    Gram,
    Byte,
    Kb,
    Mb,
    Gb,
    Tb,
    Liter,
    Ml,
    Celsius,
    Fahrenheit,
    Tablespoon,
    Teaspoon,
}

impl Unit {
    /// Whether two numbers with these units can be the same quantity. A missing unit is
    /// compatible with any: "100" and "$100" are the same question in context.
    pub fn compatible(self, other: Unit) -> bool {
        use Unit::*;
        self == other
            || self == None
            || other == None
            || matches!(
                (self, other),
                (Pound, Gbp | Lb)
                    | (Gbp | Lb, Pound)
                    | (YenOrYuan, Yen | Yuan)
                    | (Yen | Yuan, YenOrYuan)
            )
    }
}

pub(super) fn unit_symbol(c: char) -> Option<Unit> {
    Some(match c {
        '$' => Unit::Usd,
        '€' => Unit::Eur,
        '£' => Unit::Gbp,
        '¥' | '￥' => Unit::YenOrYuan,
        '₹' => Unit::Rupee,
        '%' | '％' => Unit::Percent,
        _ => return None,
    })
}

/// A unit written as a word (or glued suffix), lowercase.
pub(super) fn unit_word(w: &str) -> Unit {
    match w {
        "dollar" | "dollars" | "usd" | "bucks" | "dollars." => Unit::Usd,
        "euro" | "euros" | "eur" => Unit::Eur,
        "gbp" | "sterling" => Unit::Gbp,
        "pound" | "pounds" | "livres" | "livre" | "libra" | "libras" | "libbra" | "libbre"
        | "pfund" | "pond" => Unit::Pound,
        "lb" | "lbs" => Unit::Lb,
        "yuan" | "rmb" | "cny" => Unit::Yuan,
        "yen" | "jpy" => Unit::Yen,
        "rs" | "inr" | "rupee" | "rupees" | "lakh" | "lakhs" => Unit::Rupee,
        "percent" | "pourcent" | "procent" | "pct" => Unit::Percent,
        "am" | "a.m" => Unit::Am,
        "pm" | "p.m" => Unit::Pm,
        // Time units in English, French, Dutch, then German, Spanish, Italian, Portuguese,
        // Russian (its case forms after numerals) and Arabic.
        "h" | "hr" | "hrs" | "hour" | "hours" | "heure" | "heures" | "uur" | "uren" | "stunde"
        | "stunden" | "hora" | "horas" | "ora" | "ore" | "час" | "часа" | "часов" | "ساعة"
        | "ساعات" => Unit::Hour,
        "min" | "mins" | "minute" | "minutes" | "minuut" | "minuten" | "minuto" | "minutos"
        | "minuti" | "минута" | "минуты" | "минут" | "دقيقة" | "دقائق" => {
            Unit::Minute
        }
        "sec" | "secs" | "second" | "seconds" | "seconde" | "secondes" | "seconden" | "sekunde"
        | "sekunden" | "segundo" | "segundos" | "secondo" | "secondi" | "секунда" | "секунды"
        | "секунд" => Unit::Second,
        "day" | "days" | "jour" | "jours" | "dag" | "dagen" | "tag" | "tage" | "tagen" | "día"
        | "días" | "dia" | "dias" | "giorno" | "giorni" | "день" | "дня" | "дней" | "يوم"
        | "أيام" | "ايام" => Unit::Day,
        "week" | "weeks" | "semaine" | "semaines" | "weken" | "woche" | "wochen" | "semana"
        | "semanas" | "settimana" | "settimane" | "неделя" | "недели" | "недель" | "أسبوع"
        | "أسابيع" => Unit::Week,
        "month" | "months" | "mois" | "maand" | "maanden" | "monat" | "monate" | "monaten"
        | "mes" | "meses" | "mês" | "mese" | "mesi" | "месяц" | "месяца" | "месяцев" | "شهر"
        | "أشهر" | "شهور" => Unit::Month,
        "year" | "years" | "yr" | "yrs" | "an" | "ans" | "année" | "années" | "jaar" | "jaren"
        | "jahr" | "jahre" | "jahren" | "año" | "años" | "ano" | "anos" | "anno" | "anni"
        | "год" | "года" | "лет" | "سنة" | "سنوات" | "عام" | "أعوام" => {
            Unit::Year
        }
        "tbsp" | "tablespoon" | "tablespoons" | "cucharada" | "cucharadas" | "cucchiaio"
        | "cucchiai" | "esslöffel" | "eetlepel" | "eetlepels" => Unit::Tablespoon,
        "tsp" | "teaspoon" | "teaspoons" | "cucharadita" | "cucharaditas" | "cucchiaino"
        | "cucchiaini" | "teelöffel" | "theelepel" | "theelepels" => Unit::Teaspoon,
        "km" | "kms" | "kmh" | "kph" | "kilometer" | "kilometers" | "kilometre" | "kilometres"
        | "kilomètre" | "kilomètres" | "kilómetro" | "kilómetros" | "chilometro" | "chilometri"
        | "quilômetro" | "quilômetros" | "км" => Unit::Km,
        "mi" | "mile" | "miles" | "mijl" | "mph" | "meile" | "meilen" | "milla" | "millas"
        | "miglio" | "miglia" | "milha" | "milhas" => Unit::Mile,
        "m" | "meter" | "meters" | "metre" | "metres" | "mètre" | "mètres" => Unit::Meter,
        "cm" | "centimeter" | "centimeters" | "centimètre" | "centimètres" => Unit::Cm,
        "mm" | "millimeter" | "millimeters" | "millimètre" | "millimètres" => Unit::Mm,
        "kg" | "kgs" | "kilo" | "kilos" | "kilogram" | "kilograms" | "kilogramme"
        | "kilogrammes" => Unit::Kg,
        "g" | "gram" | "grams" | "gramme" | "grammes" => Unit::Gram,
        "byte" | "bytes" | "octet" | "octets" => Unit::Byte,
        "kb" | "ko" | "kilobyte" | "kilobytes" => Unit::Kb,
        "mb" | "mo" | "megabyte" | "megabytes" => Unit::Mb,
        "gb" | "go" | "gig" | "gigs" | "gigabyte" | "gigabytes" => Unit::Gb,
        "tb" | "to" | "terabyte" | "terabytes" => Unit::Tb,
        "l" | "liter" | "liters" | "litre" | "litres" => Unit::Liter,
        "ml" | "milliliter" | "milliliters" | "millilitre" | "millilitres" => Unit::Ml,
        "c" | "°c" | "celsius" => Unit::Celsius,
        "f" | "°f" | "fahrenheit" => Unit::Fahrenheit,
        _ => Unit::None,
    }
}

/// A unit written in Chinese right after a numeral ("三天", "5公里").
pub(super) fn chinese_unit(after: &str) -> Unit {
    const UNITS: &[(&str, Unit)] = &[
        ("美元", Unit::Usd),
        ("欧元", Unit::Eur),
        ("英镑", Unit::Gbp),
        ("日元", Unit::Yen),
        ("元", Unit::Yuan),
        ("块", Unit::Yuan),
        ("小时", Unit::Hour),
        ("钟头", Unit::Hour),
        ("分钟", Unit::Minute),
        ("秒", Unit::Second),
        ("天", Unit::Day),
        ("周", Unit::Week),
        ("星期", Unit::Week),
        ("礼拜", Unit::Week),
        ("月", Unit::Month),
        ("年", Unit::Year),
        ("公里", Unit::Km),
        ("千米", Unit::Km),
        ("米", Unit::Meter),
        ("公斤", Unit::Kg),
        ("千克", Unit::Kg),
        ("克", Unit::Gram),
    ];
    UNITS
        .iter()
        .find(|(w, _)| after.starts_with(w))
        .map_or(Unit::None, |&(_, u)| u)
}

/// French elided words that the tokenizer splits off ("l'option" → "l'" + "option").
pub(super) fn is_elision(head: &str) -> bool {
    [
        "l", "d", "n", "j", "m", "t", "s", "c", "qu", "jusqu", "lorsqu", "puisqu",
    ]
    .iter()
    .any(|e| head.eq_ignore_ascii_case(e))
}

/// Ordinal suffixes glued to digits: "3rd", "2e", "21ème", "3de".
pub(super) fn is_ordinal_suffix(s: &str) -> bool {
    matches!(
        s,
        "st" | "nd" | "rd" | "th" | "e" | "er" | "re" | "ère" | "ème" | "eme" | "è" | "de" | "ste"
    )
}

/// The value of a number word. "one" and its kin count, but a lone value 1 is forgiven
/// by the number rule, because articles ("a", "un", "een") stand for it too.
pub(super) fn number_word(w: &str) -> Option<u64> {
    if !(2..=13).contains(&w.len()) {
        return None;
    }
    Some(match w {
        "zero" | "zéro" | "nul" => 0,
        "one" | "un" | "une" | "een" => 1,
        "two" | "deux" | "twee" => 2,
        "three" | "third" | "trois" | "troisième" | "drie" | "derde" => 3,
        "four" | "fourth" | "quatre" | "quatrième" | "vier" | "vierde" => 4,
        "five" | "fifth" | "cinq" | "cinquième" | "vijf" | "vijfde" => 5,
        "six" | "sixth" | "sixième" | "zes" | "zesde" => 6,
        "seven" | "seventh" | "sept" | "septième" | "zeven" | "zevende" => 7,
        "eight" | "eighth" | "huit" | "huitième" | "acht" | "achtste" => 8,
        "nine" | "ninth" | "neuf" | "neuvième" | "negen" | "negende" => 9,
        "ten" | "tenth" | "dix" | "dixième" | "tien" | "tiende" => 10,
        "eleven" | "onze" | "elf" => 11,
        "twelve" | "douze" | "twaalf" | "dozen" => 12,
        "thirteen" | "treize" | "dertien" => 13,
        "fourteen" | "quatorze" | "veertien" => 14,
        "fifteen" | "quinze" | "vijftien" => 15,
        "sixteen" | "seize" | "zestien" => 16,
        "seventeen" | "zeventien" => 17,
        "eighteen" | "achttien" => 18,
        "nineteen" | "negentien" => 19,
        "twenty" | "vingt" | "vingts" | "twintig" => 20,
        "thirty" | "trente" | "dertig" => 30,
        "forty" | "quarante" | "veertig" => 40,
        "fifty" | "cinquante" | "vijftig" => 50,
        "sixty" | "soixante" | "zestig" => 60,
        "seventy" | "zeventig" => 70,
        "eighty" | "tachtig" => 80,
        "ninety" | "negentig" => 90,
        "hundred" | "cent" | "cents" | "honderd" => 100,
        "thousand" | "mille" | "duizend" => 1_000,
        "million" | "millions" | "miljoen" => 1_000_000,
        "billion" | "billions" | "milliard" | "milliards" | "miljard" => 1_000_000_000,
        _ => return None,
    })
}

/// A Han (Chinese) character: the word tables match Han terms as substrings, and the
/// tokeniser (`text.rs`) reads a run of them as one span.
pub(super) fn is_han(c: char) -> bool {
    matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F | 0x3007)
}

/// Chinese numeral characters: digits 0–9 and the multipliers.
pub(super) fn chinese_digit(c: char) -> Option<u64> {
    Some(match c {
        '零' | '〇' => 0,
        '一' => 1,
        '二' | '两' => 2,
        '三' => 3,
        '四' => 4,
        '五' => 5,
        '六' => 6,
        '七' => 7,
        '八' => 8,
        '九' => 9,
        '十' => 10,
        '百' => 100,
        '千' => 1_000,
        '万' => 10_000,
        '亿' => 100_000_000,
        _ => return None,
    })
}

/// Words that start with a numeral but are not numbers ("十分" = very, "百度" = Baidu).
pub(super) const CHINESE_NUMBER_IDIOMS: &[&str] = &[
    "十分",
    "千万",
    "万万",
    "万一",
    "一些",
    "一下",
    "一样",
    "一起",
    "一直",
    "一定",
    "一般",
    "一点",
    "一切",
    "一致",
    "一旦",
    "一边",
    "百度",
    "百科",
    "四处",
    "四周",
    "万物",
    "七八糟",
    "三心二意",
    "一五一十",
    "五花八门",
    "九州",
];

/// How a word takes part in negation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Negator {
    /// A complete negation: "not", "never", "geen", "sans".
    Plain,
    /// French "ne"/"n'": one negation together with a following "pas"/"jamais"/…
    FrenchNe,
    /// French "pas"/"jamais"/"rien"/"aucun": one negation with or without "ne".
    FrenchPas,
}

pub(super) fn negator(w: &str) -> Option<Negator> {
    Some(match w {
        "not" | "no" | "never" | "none" | "nothing" | "nobody" | "nowhere" | "neither" | "nor"
        | "without" | "unable" | "niet" | "geen" | "nooit" | "niets" | "niemand" | "nergens"
        | "zonder" | "noch" | "sans"
        // German, Spanish, Italian, Portuguese, Scandinavian, Polish, Russian, Indonesian.
        | "nicht" | "kein" | "keine" | "keinen" | "keinem" | "keiner" | "nie" | "niemals"
        | "nichts" | "ohne" | "nunca" | "jamás" | "ningún" | "ninguno" | "ninguna" | "non"
        | "mai" | "senza" | "nessuno" | "nessuna" | "não" | "nenhum" | "nenhuma" | "sem"
        | "inte" | "ej" | "aldrig" | "utan" | "ikke" | "aldri" | "uten" | "uden" | "nigdy"
        | "не" | "нет" | "никогда" | "без" | "tidak" | "bukan" | "tanpa"
        // Arabic ("ما" is also "what", so it is left out).
        | "لا" | "لم" | "لن" | "ليس" | "ليست" | "بدون" | "بلا" => Negator::Plain,
        "ne" | "n'" => Negator::FrenchNe,
        "pas" | "jamais" | "rien" | "aucun" | "aucune" | "guère" => Negator::FrenchPas,
        w if is_negated_auxiliary(w) => Negator::Plain,
        _ => return None,
    })
}

/// An English negated auxiliary ("can't", "dont", "cannot"): opening a question, it asks
/// rather than negates ("Can't I pay by card?").
pub(super) fn is_negated_auxiliary(w: &str) -> bool {
    w.ends_with("n't")
        || matches!(
            w,
            "cannot"
                | "dont"
                | "doesnt"
                | "didnt"
                | "isnt"
                | "arent"
                | "wasnt"
                | "werent"
                | "cant"
                | "couldnt"
                | "shouldnt"
                | "wouldnt"
                | "wont"
                | "havent"
                | "hasnt"
                | "hadnt"
                | "mustnt"
                | "aint"
        )
}

/// Auxiliary verbs, which rephrasing a negation adds or drops ("does not work" / "is not
/// working").
/// The pronoun of an English pronoun with an auxiliary contracted onto it ("i've",
/// "you're", "she'll", "we'd").
pub(super) fn contracted_pronoun(w: &str) -> Option<&str> {
    let (pronoun, aux) = w.split_once(['\'', '\u{2019}'])?;
    (matches!(
        pronoun,
        "i" | "you" | "he" | "she" | "it" | "we" | "they" | "that" | "there" | "who"
    ) && matches!(aux, "ve" | "re" | "ll" | "d" | "m" | "s"))
    .then_some(pronoun)
}

/// Adverbs that come with one polarity and go with the other ("I've already used it" /
/// "I haven't used it yet"): not a difference beside a flip of polarity.
pub(super) fn is_polarity_adverb(w: &str) -> bool {
    matches!(w, "already" | "yet" | "ever" | "still")
}

pub(super) fn is_auxiliary(w: &str) -> bool {
    matches!(
        w,
        "do" | "does"
            | "did"
            | "is"
            | "are"
            | "was"
            | "were"
            | "be"
            | "been"
            | "am"
            | "will"
            | "would"
            | "can"
            | "could"
            | "should"
            | "have"
            | "has"
            | "had"
            | "est"
            | "sont"
            | "a"
            | "ont"
            | "fait"
            | "is'"
            | "ben"
            | "zijn"
            | "was'"
            | "heeft"
            | "hebben"
            | "doet"
            | "doen"
            | "kan"
            | "kunnen"
    )
}

/// Chinese negation characters.
pub(super) const CHINESE_NEGATORS: &[char] =
    &['不', '没', '别', '无', '未', '非', '莫', '勿', '甭'];

/// Words containing a negation character that do not negate ("非常" = very, "别人" =
/// others, "无论" = regardless, "不同" = different).
pub(super) const CHINESE_NOT_NEGATION: &[&str] = &[
    "非常",
    "未来",
    "无论",
    "不过",
    "不断",
    "不仅",
    "不管",
    "不同",
    "不错",
    "不少",
    "不然",
    "不如",
    "不久",
    "无线",
    "无人机",
    "无聊",
    "除非",
    "是非",
    "非洲",
    "莫斯科",
    "别人",
    "别的",
    "区别",
    "分别",
    "特别",
    "类别",
    "级别",
    "告别",
    "识别",
    "鉴别",
    "差别",
    "性别",
    "辨别",
    "个别",
    "别墅",
    "别名",
    "差不多",
    "不得不",
];

/// The question a question word asks for — a place, a time, a person, a reason — in
/// English, French, Dutch, German, Spanish, Italian and Portuguese. Not "what" / "which"
/// or "how", which rephrasings trade for each other ("What is the way to …" / "How do
/// I …").
pub(super) fn question_word(w: &str) -> Option<u8> {
    match w {
        "where" | "où" | "waar" | "wo" | "dónde" | "donde" | "dove" | "onde" => Some(0),
        "when" | "quand" | "wanneer" | "wann" | "cuándo" | "cuando" | "quando" => Some(1),
        "who" | "qui" | "wer" | "quién" | "quien" | "chi" | "quem" => Some(2),
        "why" | "pourquoi" | "waarom" | "warum" | "perché" | "perche" => Some(3),
        _ => None,
    }
}

/// One group of mutually exclusive terms: a text that says one of them and another text
/// that says another one instead ask different things.
pub(super) struct Group {
    pub reason: RejectReason,
    /// Each class lists word forms. A trailing `*` expands English inflections
    /// ("encrypt*" → encrypts, encrypted, encrypting, encryption, …), a trailing `~`
    /// French first-group ones ("ferm~" → fermer, ferme, fermé, …). Terms in Han script
    /// are matched as substrings.
    pub classes: &'static [&'static [&'static str]],
}

const A: RejectReason = RejectReason::Antonym;
const N: RejectReason = RejectReason::Number;

pub(super) const GROUPS: &[Group] = &[
    Group {
        reason: A,
        classes: &[
            &[
                "read*", "reader", "lire", "lis", "lit", "lisez", "lu", "lue", "lecture", "lezen",
                "lees", "leest", "las", "gelezen", "读",
            ],
            &[
                "write*",
                "wrote",
                "written",
                "writing",
                "écrire",
                "écris",
                "écrit",
                "écrite",
                "écrivez",
                "écriture",
                "schrijven",
                "schrijf",
                "schrijft",
                "schreef",
                "geschreven",
                "写",
            ],
        ],
    },
    Group {
        reason: A,
        classes: &[
            &[
                "enable*",
                "activate*",
                "activ~",
                "inschakelen",
                "schakel in",
                "ingeschakeld",
                "activeren",
                "activeer",
                "geactiveerd",
                "启用",
                "开启",
                "激活",
                "打开",
                // Polish, Indonesian.
                "włączyć",
                "włącz",
                "włączenie",
                "mengaktifkan",
                "aktifkan",
            ],
            &[
                "disable*",
                "deactivate*",
                "désactiv~",
                "uitschakelen",
                "uitgeschakeld",
                "deactiveren",
                "deactiveer",
                "gedeactiveerd",
                "禁用",
                "停用",
                "关闭",
                "wyłączyć",
                "wyłącz",
                "wyłączenie",
                "menonaktifkan",
                "nonaktifkan",
            ],
        ],
    },
    Group {
        reason: A,
        classes: &[
            &[
                "install*",
                "installation",
                "install~",
                "installeren",
                "installeer",
                "geïnstalleerd",
                "安装",
            ],
            &[
                "uninstall*",
                "désinstall~",
                "verwijderen",
                "verwijder",
                "verwijderd",
                "卸载",
            ],
        ],
    },
    Group {
        reason: A,
        classes: &[
            &[
                "encrypt*",
                "encryption",
                "chiffr~",
                "crypt~",
                "versleutelen",
                "versleutel",
                "versleuteld",
                "加密",
            ],
            &[
                "decrypt*",
                "decryption",
                "déchiffr~",
                "décrypt~",
                "ontsleutelen",
                "ontsleutel",
                "ontsleuteld",
                "解密",
            ],
        ],
    },
    Group {
        reason: A,
        classes: &[
            &["encode*", "encod~", "coderen", "codeer", "编码"],
            &["decode*", "décod~", "decoderen", "decodeer", "解码"],
        ],
    },
    Group {
        reason: A,
        classes: &[
            &[
                "compress*",
                "zip*",
                "compress~",
                "comprimer",
                "compressie",
                "comprimeren",
                "压缩",
            ],
            &[
                "decompress*",
                "unzip*",
                "décompress~",
                "uitpakken",
                "decomprimeren",
                "解压",
            ],
        ],
    },
    Group {
        reason: A,
        classes: &[
            &[
                "upload*",
                "uploader",
                "téléverser",
                "téléverse",
                "uploaden",
                "upload",
                "geüpload",
                "上传",
            ],
            &[
                "download*",
                "télécharg~",
                "downloaden",
                "gedownload",
                "下载",
            ],
        ],
    },
    Group {
        reason: A,
        classes: &[
            &[
                "add*",
                "insert*",
                "ajout~",
                "toevoegen",
                "voeg",
                "toegevoegd",
                "添加",
                "增加",
            ],
            &[
                "remove*",
                "delete*",
                "eras~",
                "erase*",
                "supprim~",
                "retir~",
                "enlev~",
                "effac~",
                "verwijderen",
                "verwijder",
                "verwijderd",
                "wissen",
                "gewist",
                "删除",
                "移除",
                "去掉",
            ],
        ],
    },
    Group {
        reason: A,
        classes: &[
            &[
                "increase*",
                "raise*",
                "more",
                "higher",
                "greater",
                "bigger",
                "larger",
                "augment~",
                "plus",
                "davantage",
                "verhogen",
                "verhoog",
                "verhoogd",
                "meer",
                "groter",
                "hoger",
                "增加",
                "提高",
                "更多",
                "调高",
                "增大",
            ],
            &[
                "decrease*",
                "lower*",
                "reduce*",
                "less",
                "fewer",
                "smaller",
                "diminu~",
                "rédui~",
                "réduire",
                "moins",
                "verlagen",
                "verlaag",
                "verlaagd",
                "verminderen",
                "minder",
                "kleiner",
                "lager",
                "减少",
                "降低",
                "更少",
                "调低",
                "减小",
            ],
        ],
    },
    Group {
        reason: A,
        classes: &[
            &[
                "buy*",
                "bought",
                "buyer",
                "purchase*",
                "achet~",
                "achat",
                "kopen",
                "koop",
                "koopt",
                "gekocht",
                "买",
                "购买",
                // Spanish and Portuguese, Vietnamese.
                "comprar",
                "compro",
                "mua",
            ],
            &[
                "sell*", "sold", "seller", "vend~", "vendre", "vends", "vend", "vendu", "vente",
                "verkopen", "verkoop", "verkoopt", "verkocht", "卖", "出售", "vender", "vendo",
                "bán",
            ],
        ],
    },
    Group {
        reason: A,
        classes: &[
            &[
                "import*",
                "import~",
                "importeren",
                "importeer",
                "geïmporteerd",
                "导入",
                "进口",
            ],
            &[
                "export*",
                "export~",
                "exporteren",
                "exporteer",
                "geëxporteerd",
                "导出",
                "出口",
            ],
        ],
    },
    Group {
        reason: A,
        classes: &[
            &[
                "open*",
                "opened",
                "opening",
                "ouvrir",
                "ouvre",
                "ouvres",
                "ouvrez",
                "ouvert",
                "ouverte",
                "ouverture",
                "openen",
                "opent",
                "geopend",
                "打开",
                // Spanish and Portuguese.
                "abrir",
                "abro",
                "abre",
                "abierto",
                "aberto",
            ],
            &[
                "close*",
                "shut",
                "shutting",
                "ferm~",
                "fermeture",
                "sluiten",
                "sluit",
                "gesloten",
                "dicht",
                "关闭",
                "关上",
                "关掉",
                "cerrar",
                "cierro",
                "cierra",
                "cerrado",
                // Not "fecha": Spanish for a date.
                "fechar",
                "fecho",
                "fechado",
            ],
        ],
    },
    Group {
        reason: A,
        classes: &[
            &[
                "start*",
                "begin",
                "begins",
                "beginning",
                "began",
                "démarr~",
                "commenc~",
                "commencer",
                "starten",
                "begint",
                "gestart",
                "开始",
                "启动",
            ],
            &[
                "stop*",
                "finish*",
                "end",
                "ends",
                "ending",
                "arrêt~",
                "stopp~",
                "termin~",
                "stoppen",
                "stopt",
                "gestopt",
                "beëindigen",
                "停止",
                "结束",
            ],
        ],
    },
    Group {
        reason: A,
        classes: &[
            &[
                "lock*",
                "verrouill~",
                "vergrendelen",
                "vergrendel",
                "vergrendeld",
                "锁定",
                "上锁",
            ],
            &[
                "unlock*",
                "déverrouill~",
                "ontgrendelen",
                "ontgrendel",
                "ontgrendeld",
                "解锁",
            ],
        ],
    },
    Group {
        reason: A,
        classes: &[
            &[
                "allow*",
                "permit*",
                "autoris~",
                "permettre",
                "toestaan",
                "sta toe",
                "toegestaan",
                "允许",
            ],
            &[
                "deny*",
                "denied",
                "block*",
                "forbid*",
                "forbidden",
                "prohibit*",
                "interdi~",
                "interdire",
                "interdit",
                "bloqu~",
                "weigeren",
                "blokkeren",
                "blokkeer",
                "geblokkeerd",
                "verbieden",
                "verboden",
                "禁止",
                "阻止",
            ],
        ],
    },
    Group {
        reason: A,
        classes: &[
            &[
                "accept*",
                "approve*",
                "accept~",
                "accepteren",
                "accepteer",
                "geaccepteerd",
                "aanvaarden",
                "接受",
                "同意",
                "批准",
            ],
            &[
                "reject*",
                "decline*",
                "refuse*",
                "refus~",
                "rejet~",
                "rejeter",
                "afwijzen",
                "afgewezen",
                "weigeren",
                "geweigerd",
                "拒绝",
            ],
        ],
    },
    Group {
        reason: A,
        classes: &[
            &[
                "before",
                "avant",
                "voordat",
                "vóór",
                // Dutch "voor" is also "for", but in place of "na" it is "before".
                "voor",
                "bevor",
                "vor",
                "antes",
                "prima",
                "до",
                "перед",
                "قبل",
                "之前",
                "以前",
            ],
            &[
                "after",
                "après",
                "nadat",
                "na",
                "nachdem",
                "nach",
                "después",
                "depois",
                "dopo",
                "после",
                "بعد",
                "之后",
                "以后",
            ],
        ],
    },
    Group {
        reason: A,
        classes: &[
            &[
                "max",
                "maximum",
                "maximal",
                "maximize*",
                "maximise*",
                "largest",
                "biggest",
                "highest",
                "most",
                "maximale",
                "maximaal",
                "maximaliseren",
                "meeste",
                "hoogste",
                "grootste",
                "最大",
                "最多",
                "最高",
            ],
            &[
                "min",
                "minimum",
                "minimal",
                "minimize*",
                "minimise*",
                "smallest",
                "lowest",
                "least",
                "minimale",
                "minimaal",
                "minimaliseren",
                "minste",
                "laagste",
                "kleinste",
                "最小",
                "最少",
                "最低",
            ],
        ],
    },
    Group {
        reason: A,
        classes: &[
            &[
                "on",
                "allum~",
                "aan",
                "aanzetten",
                "开机",
                // Italian, Spanish, German.
                "accendere",
                "accendo",
                "accendi",
                "accende",
                "acceso",
                "accesa",
                "encender",
                "enciendo",
                "enciende",
                "enciendes",
                "encendido",
                "einschalten",
                "anschalten",
            ],
            &[
                "off",
                "éteindre",
                "éteins",
                "éteint",
                "éteignez",
                "uit",
                "uitzetten",
                "关机",
                "spegnere",
                "spengo",
                "spegni",
                "spegne",
                "spento",
                "spenta",
                "apagar",
                "apago",
                "apaga",
                "apagas",
                "apagado",
                "ausschalten",
            ],
            &["up"],
            &["down"],
        ],
    },
    // Where something goes: "copy files to my phone" / "from my phone", "flights to
    // London" / "from London". (Whole prompts swapping two places are `direction`.)
    Group {
        reason: A,
        classes: &[
            &["to", "into", "onto", "toward", "towards", "vers", "naar"],
            &["from", "depuis", "vanaf"],
        ],
    },
    Group {
        reason: A,
        classes: &[
            &["in", "inside", "indoor", "indoors"],
            &["out", "outside", "outdoor", "outdoors"],
        ],
    },
    Group {
        reason: A,
        classes: &[
            &["under", "below", "beneath", "sous", "onder", "beneden"],
            &["over", "above", "dessus", "boven"],
        ],
    },
    Group {
        reason: A,
        classes: &[
            &[
                "login",
                "logon",
                "signin",
                "connect*",
                "connect~",
                "connexion",
                "inloggen",
                "aanmelden",
                "verbinden",
                "登录",
                "连接",
            ],
            &[
                "logout",
                "logoff",
                "signout",
                "disconnect*",
                "déconnect~",
                "déconnexion",
                "uitloggen",
                "afmelden",
                "登出",
                "断开",
            ],
        ],
    },
    Group {
        reason: A,
        classes: &[
            &[
                "show*",
                "shown",
                "display*",
                "unhide*",
                "affich~",
                "montr~",
                "tonen",
                "toon",
                "weergeven",
                "显示",
            ],
            &[
                "hide*",
                "hidden",
                "hiding",
                "masqu~",
                "verbergen",
                "verberg",
                "verborgen",
                "隐藏",
            ],
        ],
    },
    Group {
        reason: A,
        classes: &[
            &[
                "send*",
                "sent",
                "envoy~",
                "envoyer",
                "verzenden",
                "verstuur",
                "versturen",
                "verstuurd",
                "verzonden",
                "发送",
                "寄",
            ],
            &[
                "receive*",
                "received",
                "recevoir",
                "reçu",
                "reçois",
                "ontvangen",
                "ontvang",
                "接收",
                "收到",
            ],
        ],
    },
    Group {
        reason: A,
        classes: &[
            &["deposit*", "dépos~", "storten", "gestort", "存款"],
            &[
                "withdraw*",
                "withdrew",
                "withdrawn",
                "withdrawal",
                "retrait",
                "opnemen",
                "opname",
                "取款",
                "取钱",
            ],
        ],
    },
    Group {
        reason: A,
        classes: &[
            &[
                "best",
                "better",
                "good",
                "meilleur",
                "meilleure",
                "meilleurs",
                "meilleures",
                "mieux",
                "bon",
                "bonne",
                "beste",
                "beter",
                "goed",
                "goede",
                "最好",
                "更好",
            ],
            &[
                "worst",
                "worse",
                "bad",
                "pire",
                "pires",
                "mauvais",
                "mauvaise",
                "slechtste",
                "slechter",
                "slecht",
                "slechte",
                "最差",
                "更差",
                "最坏",
                "更坏",
            ],
        ],
    },
    Group {
        reason: A,
        classes: &[
            &["first", "premier", "première", "eerste", "第一", "最先"],
            &["last", "dernier", "dernière", "laatste", "最后"],
        ],
    },
    Group {
        reason: A,
        classes: &[
            &[
                "advantage*",
                "pros",
                "benefit*",
                "avantage",
                "avantages",
                "voordeel",
                "voordelen",
                "优点",
                "好处",
            ],
            &[
                "disadvantage*",
                "cons",
                "drawback*",
                "inconvénient",
                "inconvénients",
                "nadeel",
                "nadelen",
                "缺点",
                "坏处",
            ],
        ],
    },
    Group {
        reason: A,
        classes: &[
            &[
                "cheap",
                "cheaper",
                "cheapest",
                "inexpensive",
                "bon marché",
                "goedkoop",
                "goedkope",
                "goedkoopste",
                "便宜",
            ],
            &[
                "expensive",
                "costly",
                "pricey",
                "cher",
                "chère",
                "chers",
                "duur",
                "dure",
                "duurste",
                "贵",
                "昂贵",
            ],
        ],
    },
    Group {
        reason: A,
        classes: &[
            &[
                "fast", "faster", "fastest", "quick", "quicker", "rapide", "snel", "snelle",
                "sneller", "最快", "更快",
            ],
            &[
                "slow", "slower", "slowest", "lent", "lente", "langzaam", "traag", "trage", "最慢",
                "更慢", "很慢",
            ],
        ],
    },
    Group {
        reason: A,
        classes: &[
            &[
                "hot", "hotter", "warm", "warmer", "chaud", "chaude", "heet", "热",
            ],
            &["cold", "colder", "froid", "froide", "koud", "koude", "冷"],
        ],
    },
    Group {
        reason: A,
        classes: &[
            &["legal", "légal", "légale", "legaal", "合法"],
            &["illegal", "illégal", "illégale", "illegaal", "非法", "违法"],
        ],
    },
    Group {
        reason: A,
        classes: &[
            &["true", "vrai", "vraie", "waar"],
            &["false", "faux", "fausse", "onwaar"],
        ],
    },
    Group {
        reason: A,
        classes: &[
            &["positive", "positif", "positive", "positief"],
            &["negative", "négatif", "négative", "negatief"],
        ],
    },
    Group {
        reason: A,
        classes: &[
            &[
                "win", "wins", "winning", "won", "gagn~", "winnen", "wint", "gewonnen", "赢",
            ],
            &[
                "lose",
                "loses",
                "losing",
                "lost",
                "perdre",
                "perd",
                "perdu",
                "verliezen",
                "verliest",
                "verloren",
                "输",
            ],
        ],
    },
    Group {
        reason: A,
        classes: &[
            &["love*", "aim~", "爱"],
            &["hate*", "détest~", "haïr", "haten", "haat", "恨"],
        ],
    },
    Group {
        reason: A,
        classes: &[
            &[
                "north", "northern", "nord", "noord", "noorden", "北方", "北部",
            ],
            &["south", "southern", "sud", "zuid", "zuiden", "南方", "南部"],
            &["east", "eastern", "oost", "oosten", "东部"],
            &["west", "western", "ouest", "westen", "西部"],
        ],
    },
    Group {
        reason: A,
        classes: &[
            &[
                "he",
                "him",
                "his",
                "himself",
                "boyfriend",
                "husband",
                "son",
                "father",
                "dad",
                "brother",
                "man",
                "men",
                "boy",
                "boys",
                "male",
                "il",
                "lui",
                "copain",
                "mari",
                "fils",
                "père",
                "frère",
                "homme",
                "hommes",
                "garçon",
                "hij",
                "hem",
                "vriend",
                "zoon",
                "vader",
                "broer",
                "jongen",
                "他",
                "男",
            ],
            &[
                "she",
                "her",
                "hers",
                "herself",
                "girlfriend",
                "wife",
                "daughter",
                "mother",
                "mom",
                "mum",
                "sister",
                "woman",
                "women",
                "girl",
                "girls",
                "female",
                "elle",
                "copine",
                "femme",
                "femmes",
                "fille",
                "mère",
                "sœur",
                "ze",
                "haar",
                "vriendin",
                "vrouw",
                "dochter",
                "moeder",
                "zus",
                "meisje",
                "她",
                "女",
            ],
        ],
    },
    // Scope: one thing or every one of them ("mute a single participant" / "mute all
    // participants"). Not "one" (a number, and "which one", "one of"), not "each" (as
    // often "all" as not).
    Group {
        reason: A,
        classes: &[
            &[
                "single",
                "individual",
                "seul",
                "seule",
                "einzelne",
                "einzelnen",
                "einzigen",
                "单个",
            ],
            &[
                "all",
                "every",
                "everyone",
                "everybody",
                "everything",
                "tous",
                "toutes",
                "alle",
                "allen",
                "所有",
                "全部",
            ],
        ],
    },
    Group {
        reason: N,
        classes: &[
            &[
                "today",
                "tonight",
                "aujourd'hui",
                "ce soir",
                "vandaag",
                "vanavond",
                "今天",
                "今晚",
            ],
            &["tomorrow", "demain", "morgen", "明天"],
            &["yesterday", "hier", "gisteren", "昨天"],
        ],
    },
    Group {
        reason: N,
        classes: &[
            &[
                "morning", "matin", "matinée", "ochtend", "morgens", "早上", "上午",
            ],
            &["afternoon", "midi", "middag", "下午"],
            &[
                "evening", "night", "tonight", "soir", "soirée", "nuit", "avond", "nacht", "晚上",
            ],
        ],
    },
    Group {
        reason: N,
        classes: &[
            &["monday", "mondays", "lundi", "maandag", "星期一", "周一"],
            &["tuesday", "tuesdays", "mardi", "dinsdag", "星期二", "周二"],
            &[
                "wednesday",
                "wednesdays",
                "mercredi",
                "woensdag",
                "星期三",
                "周三",
            ],
            &[
                "thursday",
                "thursdays",
                "jeudi",
                "donderdag",
                "星期四",
                "周四",
            ],
            &["friday", "fridays", "vendredi", "vrijdag", "星期五", "周五"],
            &[
                "saturday",
                "saturdays",
                "samedi",
                "zaterdag",
                "星期六",
                "周六",
            ],
            &[
                "sunday",
                "sundays",
                "dimanche",
                "zondag",
                "星期日",
                "星期天",
                "周日",
            ],
        ],
    },
    Group {
        reason: N,
        classes: &[
            &["january", "janvier", "januari"],
            &["february", "février", "februari"],
            &["march", "mars", "maart"],
            &["april", "avril"],
            &["may", "mai", "mei"],
            &["june", "juin", "juni"],
            &["july", "juillet", "juli"],
            &["august", "août", "augustus"],
            &["september", "septembre"],
            &["october", "octobre", "oktober"],
            &["november", "novembre"],
            &["december", "décembre"],
        ],
    },
];

/// Where a term belongs: group and class indices.
pub(super) type Slot = (u16, u16);

/// The groups' word forms, expanded, keyed by lowercase form.
pub(super) static WORD_SLOTS: LazyLock<HashMap<String, Vec<Slot>>> = LazyLock::new(|| {
    let mut map: HashMap<String, Vec<Slot>> = HashMap::new();
    for (g, group) in GROUPS.iter().enumerate() {
        for (c, class) in group.classes.iter().enumerate() {
            for term in class.iter().filter(|t| !t.chars().any(is_han)) {
                for form in expand(term) {
                    let slots = map.entry(form).or_default();
                    let slot = (g as u16, c as u16);
                    if !slots.contains(&slot) {
                        slots.push(slot);
                    }
                }
            }
        }
    }
    map
});

/// The groups' Han terms, matched as substrings.
pub(super) static HAN_TERMS: LazyLock<Vec<(&'static str, Slot)>> = LazyLock::new(|| {
    let mut terms = Vec::new();
    for (g, group) in GROUPS.iter().enumerate() {
        for (c, class) in group.classes.iter().enumerate() {
            for term in class.iter().filter(|t| t.chars().any(is_han)) {
                terms.push((*term, (g as u16, c as u16)));
            }
        }
    }
    terms
});

fn expand(term: &str) -> Vec<String> {
    if let Some(stem) = term.strip_suffix('*') {
        let mut out = vec![stem.to_string()];
        for s in [
            "s", "es", "ed", "d", "ing", "er", "ers", "ion", "ions", "ment", "ments", "able",
        ] {
            out.push(format!("{stem}{s}"));
        }
        if let Some(base) = stem.strip_suffix('e') {
            for s in ["ing", "ion", "ions", "able", "ation", "ations"] {
                out.push(format!("{base}{s}"));
            }
        }
        if let Some(base) = stem.strip_suffix('y') {
            out.push(format!("{base}ies"));
            out.push(format!("{base}ied"));
        }
        let b = stem.as_bytes();
        if b.len() >= 3 {
            let is_vowel = |c: u8| b"aeiou".contains(&c);
            let (x, y, z) = (b[b.len() - 3], b[b.len() - 2], b[b.len() - 1]);
            if !is_vowel(x) && is_vowel(y) && !is_vowel(z) && !b"wxy".contains(&z) {
                let last = z as char;
                for s in ["ed", "ing", "er"] {
                    out.push(format!("{stem}{last}{s}"));
                }
            }
        }
        out
    } else if let Some(stem) = term.strip_suffix('~') {
        [
            "er", "e", "es", "ez", "ons", "ent", "é", "ée", "és", "ées", "ant", "ais", "ait",
            "era", "erai", "ation", "ations", "ement",
        ]
        .iter()
        .map(|s| format!("{stem}{s}"))
        .collect()
    } else {
        vec![term.to_string()]
    }
}

/// Prefixes that turn a word into its opposite: "lock"/"unlock", "possible"/"impossible",
/// "activer"/"désactiver", "activar"/"desactivar" (and French typed without accents),
/// "mogelijk"/"onmogelijk".
pub(super) const NEGATING_PREFIXES: &[&str] = &[
    "un", "in", "im", "il", "ir", "dis", "non", "anti", "de", "dé", "dés", "des", "on", "ont",
];

/// Inflection endings a word stem may take on either side of a prefix pair.
pub(super) const INFLECTIONS: &[&str] = &[
    "", "s", "es", "ed", "d", "ing", "er", "ers", "ion", "ions", "e", "en", "t", "te", "ten", "é",
    "ée", "és", "ées", "ez", "ons", "ent", "able", "ity", "ly",
];

/// Words that look like a negating prefix plus a word but are not its opposite.
pub(super) const FALSE_PREFIXED: &[&str] = &[
    "discover",
    "display",
    "dispatch",
    "discount",
    "distance",
    "deliver",
    "improve",
    "impress",
    "inhabit",
    "insight",
    "instance",
    "install",
    "invest",
    "income",
    "inform",
    "impact",
    "import",
    "infamous",
    "depart",
    "deposit",
    "depress",
    "design",
    "detail",
    "define",
    "destroy",
    "develop",
    "determine",
    "department",
    "interest",
    "intend",
    "invent",
    "include",
    "increase",
    "decrease",
    "dismiss",
    "disease",
    "inspire",
    "unless",
    "until",
    "desert",
    "defence",
    "defense",
    "demand",
    "deal",
    "deliver",
    "derive",
    "describe",
    "online",
    "onderwerp",
    "ontwerp",
    "ontdek",
    "ontwikkel",
    "ontstaan",
    "ondersteun",
    "onder",
    "ontvang",
    "onthoud",
    "ontmoet",
    "ontbijt",
    "invite",
    "indian",
    "india",
    "inside",
    "input",
    "index",
    "into",
    "irate",
    "island",
    "illness",
    "intake",
    "invoice",
    "indoor",
    "ongoing",
    "onset",
    "découvr",
    "déplac",
    "dépass",
    "dépens",
    "dépos",
    "défin",
    "détermin",
    "développ",
    "demand",
    "dévelop",
    "détail",
];
