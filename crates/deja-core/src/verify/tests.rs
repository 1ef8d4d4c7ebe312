use super::*;
use RejectReason::*;

#[test]
fn table() {
    let cases: &[(&str, &str, Result<(), RejectReason>)] = &[
        // Negation in more languages.
        (
            "Ich möchte mein Abo kündigen",
            "Ich möchte mein Abo nicht kündigen",
            Err(Negation),
        ),
        (
            "Posso pagare con la carta?",
            "Non posso pagare con la carta?",
            Err(Negation),
        ),
        (
            "Я хочу отменить подписку",
            "Я не хочу отменить подписку",
            Err(Negation),
        ),
        (
            "Quero cancelar a assinatura",
            "Não quero cancelar a assinatura",
            Err(Negation),
        ),
        (
            "هل يمكن استبدال المنتج إذا كان مفتوحًا؟",
            "هل يمكن استبدال المنتج إذا لم يكن مفتوحًا؟",
            Err(Negation),
        ),
        // Turning on and off in Italian, Spanish and German.
        (
            "Come accendo il riscaldamento da remoto?",
            "Come spengo il riscaldamento da remoto?",
            Err(Antonym),
        ),
        (
            "¿Cómo enciendo el wifi del portátil?",
            "¿Cómo apago el wifi del portátil?",
            Err(Antonym),
        ),
        (
            "Wie kann ich die Heizung einschalten?",
            "Wie kann ich die Heizung ausschalten?",
            Err(Antonym),
        ),
        // Open / close, enable / disable, buy / sell in more languages.
        (
            "¿Cómo abro una cuenta de ahorro?",
            "¿Cómo cierro una cuenta de ahorro?",
            Err(Antonym),
        ),
        (
            "Como abro uma conta poupança?",
            "Como fecho uma conta poupança?",
            Err(Antonym),
        ),
        (
            "Jak włączyć tryb ciemny?",
            "Jak wyłączyć tryb ciemny?",
            Err(Antonym),
        ),
        (
            "Cara mengaktifkan mode gelap?",
            "Cara menonaktifkan mode gelap?",
            Err(Antonym),
        ),
        (
            "Nên mua vàng lúc nào?",
            "Nên bán vàng lúc nào?",
            Err(Antonym),
        ),
        // Units and time shifts in more languages.
        (
            "Mi maleta pesa 23 kilos, ¿puedo facturarla?",
            "Mi maleta pesa 23 libras, ¿puedo facturarla?",
            Err(Number),
        ),
        (
            "Quanti grammi sono 3 cucchiai di zucchero?",
            "Quanti grammi sono 3 cucchiaini di zucchero?",
            Err(Number),
        ),
        (
            "Ist 100 km/h auf dem Highway erlaubt?",
            "Ist 100 mph auf dem Highway erlaubt?",
            Err(Number),
        ),
        (
            "Kann ich nach 10 Tagen noch zurückgeben?",
            "Kann ich nach 10 Wochen noch zurückgeben?",
            Err(Number),
        ),
        (
            "Como desfaço o último commit antes de dar push?",
            "Como desfaço o último commit depois de dar push?",
            Err(Antonym),
        ),
        (
            "Что нужно сделать до переезда?",
            "Что нужно сделать после переезда?",
            Err(Antonym),
        ),
        (
            "Mi maleta pesa 23 kilos",
            "mi maleta pesa 23 kilos?",
            Ok(()),
        ),
        // English: where something goes, or lies.
        (
            "How do I copy files to my phone?",
            "How do I copy files from my phone?",
            Err(Antonym),
        ),
        (
            "Cheap flights to London",
            "Cheap flights from London",
            Err(Antonym),
        ),
        (
            "How do I zoom in on a Mac?",
            "How do I zoom out on a Mac?",
            Err(Antonym),
        ),
        (
            "What is the best laptop under $500?",
            "What is the best laptop over $500?",
            Err(Antonym),
        ),
        (
            "How do I copy files to my phone?",
            "How can I copy files onto my phone?",
            Ok(()),
        ),
        (
            "How do I move from London to Paris?",
            "How can I move from London to Paris?",
            Ok(()),
        ),
        // English: numbers, units, dates.
        ("Where is order #4821?", "where is my order #4821", Ok(())),
        (
            "Where is order #4821?",
            "Where is order #4812?",
            Err(Number),
        ),
        ("wake me up at 4 am", "wake me up at 5 am", Err(Number)),
        (
            "wake me up at four am",
            "wake me up at five am",
            Err(Number),
        ),
        ("wake me up at 4 am", "wake me up at 4 pm", Err(Number)),
        ("wake me up at four am", "wake me up at 4 am", Ok(())),
        ("How long is 4.5 km?", "How long is 4,5 km?", Ok(())),
        ("Can I borrow $25,000?", "Can I borrow $25000?", Ok(())),
        (
            "Can I borrow $25,000?",
            "Can I borrow $250,000?",
            Err(Number),
        ),
        (
            "How do I learn it in an hour?",
            "How do I learn it in 1 hour?",
            Ok(()),
        ),
        ("Convert 5 GB to MB", "Convert 5 TB to MB", Err(Number)),
        (
            "what alarms did i set for monday",
            "what alarms did i set for tuesday",
            Err(Number),
        ),
        (
            "what's the weather today",
            "what's the weather tomorrow",
            Err(Number),
        ),
        (
            "How do I reset my password?",
            "how can I reset my password",
            Ok(()),
        ),
        // English: negation.
        (
            "Is there any proof that God doesn't exist?",
            "Is there any proof that God exists?",
            Err(Negation),
        ),
        (
            "Can I get a refund if I've already used the product?",
            "Can I get a refund if I haven't used the product?",
            Err(Negation),
        ),
        (
            "What if you're already registered?",
            "What if you aren't registered yet?",
            Err(Negation),
        ),
        ("Can't I pay by card?", "Can I pay by card?", Ok(())),
        // Direction in Italian, Spanish, Portuguese and German.
        (
            "Come trasferisco soldi da PayPal al conto in banca?",
            "Come trasferisco soldi dal conto in banca a PayPal?",
            Err(Direction),
        ),
        (
            "¿Cuánto cuesta el tren de Madrid a Barcelona?",
            "¿Cuánto cuesta el tren de Barcelona a Madrid?",
            Err(Direction),
        ),
        (
            "Wie lange dauert der Flug von Berlin nach Wien?",
            "Wie lange dauert der Flug von Wien nach Berlin?",
            Err(Direction),
        ),
        (
            "Quanto custa o voo do Porto para Lisboa?",
            "Quanto custa o voo de Lisboa para o Porto?",
            Err(Direction),
        ),
        (
            "Wie lange dauert der Flug von Berlin nach Wien?",
            "Wie lange dauert der Flug nach Wien von Berlin?",
            Ok(()),
        ),
        // A conversion's direction.
        (
            "¿Cómo convierto un número en texto en Excel?",
            "¿Cómo convierto texto en número en Excel?",
            Err(Direction),
        ),
        (
            "Come converto un PDF in Word?",
            "Come converto un Word in PDF?",
            Err(Direction),
        ),
        (
            "Como converter um PDF em Word?",
            "Como converter um Word em PDF?",
            Err(Direction),
        ),
        (
            "Wie wandle ich eine PDF in Word um?",
            "Wie wandle ich ein Word in PDF um?",
            Err(Direction),
        ),
        (
            "¿Cómo convierto un número en texto en Excel?",
            "¿Cómo puedo convertir un número en texto en Excel?",
            Ok(()),
        ),
        (
            "Mag ik koffie drinken voor een bloedonderzoek?",
            "Mag ik koffie drinken na een bloedonderzoek?",
            Err(Antonym),
        ),
        (
            "Wat is goed voor hoofdpijn?",
            "Wat helpt tegen hoofdpijn?",
            Ok(()),
        ),
        // A question word traded for another, nothing else changed.
        (
            "Where was the wheel invented?",
            "When was the wheel invented?",
            Err(Antonym),
        ),
        (
            "where monet's exhibition takes place",
            "when monet's exhibition takes place",
            Err(Antonym),
        ),
        (
            "Waarom is de lucht blauw?",
            "Wanneer is de lucht blauw?",
            Err(Antonym),
        ),
        (
            "Where do I see my card's PIN?",
            "When can I see my card's PIN in the app?",
            Ok(()),
        ),
        // Scope: one of them or every one.
        (
            "How do I mute a single participant in Zoom?",
            "How do I mute all participants in Zoom?",
            Err(Antonym),
        ),
        (
            "Comment supprimer un seul message sur WhatsApp ?",
            "Comment supprimer tous les messages sur WhatsApp ?",
            Err(Antonym),
        ),
        (
            "How do I delete all my emails?",
            "How do I delete every email?",
            Ok(()),
        ),
        // A role reversed by a pronoun's case.
        (
            "My manager keeps interrupting me in meetings, how should I handle it?",
            "I keep interrupting my manager in meetings, how should I handle it?",
            Err(Direction),
        ),
        (
            "Does my landlord owe me money?",
            "Do I owe my landlord money?",
            Err(Direction),
        ),
        (
            "Can you help me reset my password?",
            "How can I reset my password?",
            Ok(()),
        ),
        (
            "Tell me how to reset my password",
            "How do I reset my password?",
            Ok(()),
        ),
        ("Why can't I log in?", "Why am I unable to log in?", Ok(())),
        (
            "Why doesn't my card work?",
            "Why is my card not working?",
            Ok(()),
        ),
        (
            "Why does my card work?",
            "Why is my card not working?",
            Err(Negation),
        ),
        // English: antonyms, prefixes, direction, entities.
        (
            "How do I read a CSV file in Python?",
            "How do I write a CSV file in Python?",
            Err(Antonym),
        ),
        (
            "How do I enable dark mode?",
            "How do I disable dark mode?",
            Err(Antonym),
        ),
        (
            "How do I install numpy?",
            "How do I uninstall numpy?",
            Err(Antonym),
        ),
        (
            "switch off the wemo plug",
            "switch on the wemo plug",
            Err(Antonym),
        ),
        (
            "Is it possible to fly?",
            "Is it impossible to fly?",
            Err(Antonym),
        ),
        (
            "I was not clear about that",
            "I am unclear about it",
            Ok(()),
        ),
        (
            "Is the list non-binding?",
            "Is the list nonbinding?",
            Ok(()),
        ),
        (
            "How do I open and close a file?",
            "How do I close a file?",
            Ok(()),
        ),
        (
            "How do I unlock my phone?",
            "How can I unlock my phone?",
            Ok(()),
        ),
        (
            "How do I convert USD to EUR?",
            "How do I convert EUR to USD?",
            Err(Direction),
        ),
        (
            "flights from Paris to London",
            "flights from London to Paris",
            Err(Direction),
        ),
        (
            "flights from Paris to London",
            "flights to London from Paris",
            Ok(()),
        ),
        // French.
        (
            "Comment ouvrir un fichier ?",
            "Comment fermer un fichier ?",
            Err(Antonym),
        ),
        (
            "Comment ouvrir un fichier ?",
            "Comment ouvre-t-on un fichier ?",
            Ok(()),
        ),
        (
            "Comment activer le wifi ?",
            "Comment désactiver le wifi ?",
            Err(Antonym),
        ),
        // Typed without accents, and Spanish.
        (
            "Comment activer le wifi ?",
            "Comment desactiver le wifi ?",
            Err(Antonym),
        ),
        (
            "¿Cómo activo la autenticación de dos factores?",
            "¿Cómo desactivo la autenticación de dos factores?",
            Err(Antonym),
        ),
        (
            "¿Cómo instalo Python en Windows?",
            "¿Cómo desinstalo Python en Windows?",
            Err(Antonym),
        ),
        (
            "Pourquoi ma carte ne fonctionne pas ?",
            "Pourquoi ma carte ne marche pas ?",
            Ok(()),
        ),
        (
            "Pourquoi ma carte fonctionne ?",
            "Pourquoi ma carte ne fonctionne pas ?",
            Err(Negation),
        ),
        ("Ma carte ne marche plus", "Ma carte marche", Err(Negation)),
        ("C'est gratuit, n'est-ce pas ?", "C'est gratuit ?", Ok(())),
        (
            "Combien coûtent 4,5 kg de pommes ?",
            "Combien coûtent 4.5 kg de pommes ?",
            Ok(()),
        ),
        (
            "Réveille-moi à quatre heures",
            "Réveille-moi à cinq heures",
            Err(Number),
        ),
        (
            "Convertir des euros en dollars",
            "Convertir des dollars en euros",
            Err(Direction),
        ),
        (
            "Comment télécharger une vidéo ?",
            "Comment téléverser une vidéo ?",
            Err(Antonym),
        ),
        // Dutch.
        ("Hoe zet ik wifi aan?", "Hoe zet ik wifi uit?", Err(Antonym)),
        ("Hoe zet ik wifi aan?", "Hoe kan ik wifi aanzetten?", Ok(())),
        (
            "Waarom werkt mijn kaart niet?",
            "Waarom werkt mijn kaart?",
            Err(Negation),
        ),
        (
            "Waarom werkt mijn kaart niet?",
            "Waarom doet mijn kaart het niet?",
            Ok(()),
        ),
        (
            "Heb ik geen pincode nodig?",
            "Heb ik een pincode nodig?",
            Err(Negation),
        ),
        (
            "Hoe installeer ik Python?",
            "Hoe verwijder ik Python?",
            Err(Antonym),
        ),
        (
            "Vertaal van Engels naar Nederlands",
            "Vertaal van Nederlands naar Engels",
            Err(Direction),
        ),
        ("Wek me om zeven uur", "Wek me om acht uur", Err(Number)),
        ("Is het mogelijk?", "Is het onmogelijk?", Err(Antonym)),
        // Chinese.
        ("如何打开文件", "怎么打开文件", Ok(())),
        ("如何打开文件", "如何关闭文件", Err(Antonym)),
        ("如何上传照片", "如何下载照片", Err(Antonym)),
        ("我的卡不能用", "我的卡能用", Err(Negation)),
        ("你能不能帮我", "你能帮我吗", Ok(())),
        ("非常好吃的菜", "很好吃的菜", Ok(())),
        ("三天后到", "四天后到", Err(Number)),
        ("3天后到", "三天后到", Ok(())),
        ("从北京到上海怎么走", "从上海到北京怎么走", Err(Direction)),
        ("把PDF转换成Word", "把Word转换成PDF", Err(Direction)),
        ("明天的天气", "今天的天气", Err(Number)),
        ("我十分喜欢这个", "我非常喜欢这个", Ok(())),
    ];
    let mut failures = Vec::new();
    for (a, b, want) in cases {
        for (x, y) in [(a, b), (b, a)] {
            let got = verify(x, y);
            if got != *want {
                failures.push(format!("{x} / {y}: got {got:?}, want {want:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The entity rule is not shipped (see [`Rules::SHIPPED`]) but must keep working for
/// those who enable it.
#[test]
fn entities_when_enabled() {
    let rules = Rules::SHIPPED | Rules::ENTITY_CHANGED;
    let cases: &[(&str, &str, Result<(), RejectReason>)] = &[
        (
            "What are the towns in Montana?",
            "What are the towns in Idaho?",
            Err(Entity),
        ),
        (
            "Should I learn Python or Java?",
            "Should I learn Java or Python?",
            Ok(()),
        ),
        (
            "Is Python better than Java?",
            "Is Python better than Rust?",
            Err(Entity),
        ),
        (
            "What Is The Best Laptop",
            "What is the best laptop?",
            Ok(()),
        ),
        (
            "Why did the SEC fine them?",
            "Why did the Securities and Exchange Commission fine them?",
            Ok(()),
        ),
        ("Is the U.S. in NATO?", "Is the US in NATO?", Ok(())),
        (
            "Quelle est la capitale du Canada ?",
            "Quelle est la capitale du Mexique ?",
            Err(Entity),
        ),
        (
            "Wat is de hoofdstad van België?",
            "Wat is de hoofdstad van Nederland?",
            Err(Entity),
        ),
        ("如何用Python读取CSV", "如何用Java读取CSV", Err(Entity)),
        // German capitalises every noun: a capital marks no name there.
        (
            "Wie ändere ich mein Passwort?",
            "Wie wechsle ich mein Kennwort?",
            Ok(()),
        ),
        (
            "Hallo zusammen, ich hätte mal eine Frage: Wie beantrage ich einen Personalausweis?",
            "Wie beantrage ich einen Personalausweis?",
            Ok(()),
        ),
        // Letters with digits still do.
        (
            "Wie setze ich mein iPhone 12 zurück?",
            "Wie setze ich mein iPhone 13 zurück?",
            Err(Number),
        ),
        (
            "How do I use `os.path`?",
            "How do I use `pathlib`?",
            Err(Entity),
        ),
    ];
    for (a, b, want) in cases {
        assert_eq!(verify_with(a, b, rules), *want, "{a} / {b}");
        assert_eq!(verify_with(b, a, rules), *want, "{b} / {a}");
    }
}

#[test]
fn reasons_have_stable_names() {
    let names: Vec<&str> = [Number, Negation, Antonym, Direction, Entity, Model]
        .iter()
        .map(RejectReason::as_str)
        .collect();
    assert_eq!(
        names,
        [
            "number",
            "negation",
            "antonym",
            "direction",
            "entity",
            "model"
        ]
    );
}

#[test]
fn every_reason_indexes_its_place_in_all() {
    for (i, r) in RejectReason::ALL.iter().enumerate() {
        assert_eq!(r.index(), i, "{r:?}");
    }
}
