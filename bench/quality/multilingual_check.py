#!/usr/bin/env python3
"""Generate and check bench/quality/multilingual.csv.

Hand-written multilingual development set of prompt pairs for the semantic
cache.  Each data line below is ``label|kind|a|b``:

* ``a``     prompt already in the cache
* ``b``     new prompt
* ``label`` 1 = the answer cached for ``a`` correctly answers ``b``;
            0 = serving it would be a false hit
* ``kind``  why the pair is (not) a hit

Usage:
    python3 bench/quality/multilingual_check.py           # regenerate + check
    python3 bench/quality/multilingual_check.py --check   # only check the CSV
"""
import collections
import csv
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "multilingual.csv")
HEADER = ["a", "b", "label", "lang", "kind"]
LANGS = ["fr", "nl", "zh", "de", "es", "it", "pt", "ru", "ja", "ar", "en"]
KINDS_1 = ["reorder", "synonym", "typo", "register", "frame", "shorthand", "wrap"]
KINDS_0 = ["negation", "antonym", "number", "unit", "entity", "time", "role",
           "scope", "constraint", "topic"]

DATA = {}

DATA["fr"] = """
1|reorder|Comment annuler mon abonnement Netflix depuis mon téléphone ?|Depuis mon téléphone, comment annuler mon abonnement Netflix ?
1|reorder|Recette de crêpes sans lait pour 4 personnes|Pour 4 personnes, une recette de crêpes sans lait
1|reorder|En Python, comment trier une liste de dictionnaires par date ?|Comment trier une liste de dictionnaires par date en Python ?
1|reorder|Pour louer une voiture en Espagne avec un permis français, quels papiers faut-il présenter à l'agence ?|Quels papiers faut-il présenter à l'agence pour louer une voiture en Espagne avec un permis français ?
1|synonym|Comment récupérer mon mot de passe oublié ?|Comment retrouver mon mot de passe oublié ?
1|synonym|Quel est le temps de cuisson d'un œuf dur ?|Combien de temps faut-il pour cuire un œuf dur ?
1|synonym|Je voudrais me faire rembourser ma commande|Je souhaite obtenir le remboursement de ma commande
1|synonym|Comment supprimer une branche git en local ?|Comment effacer une branche git locale ?
1|synonym|Quels sont les symptômes d'une angine ?|Quels sont les signes d'une angine ?
1|typo|Où est ma commande ?|ou est ma comande
1|typo|Comment réinitialiser mon mot de passe ?|coment reinitialiser mon mot de pase
1|typo|Quelle est la différence entre un prêt immobilier à taux fixe et un prêt à taux variable ?|quelle est la diference entre un pret immobilier a taux fixe et un pret a taux variable
1|typo|Comment écrire une requête SQL qui compte les lignes d'une table ?|comment ecrire une requete sql qui compte les lignes d une table
1|typo|Je n'arrive pas à me connecter à mon compte, que faire ?|je narrive pas a me conecter a mon compte que faire
1|register|Pourriez-vous m'indiquer comment modifier mon adresse de livraison ?|tu peux me dire comment je modifie mon adresse de livraison ?
1|register|Auriez-vous l'amabilité de m'expliquer ce qu'est un ETF ?|c'est quoi un ETF ?
1|register|Je vous serais reconnaissant de bien vouloir résilier mon abonnement.|Résiliez mon abonnement.
1|register|Pourriez-vous me suggérer une idée de dîner rapide et végétarien ?|t'as une idée de dîner rapide et végé ?
1|frame|Comment convertir une chaîne en entier en Python ?|Convertis une chaîne en entier en Python
1|frame|Tu peux me traduire « bonne chance » en italien ?|Traduis « bonne chance » en italien
1|frame|Quelle est la racine carrée de 144 ?|Donne-moi la racine carrée de 144
1|frame|Peux-tu m'écrire un mail à mon manager pour demander un jour de congé vendredi prochain ?|Écris-moi un mail à mon manager pour demander un jour de congé vendredi prochain
1|frame|Comment annuler le dernier commit git sans perdre mes modifications ?|Explique-moi comment annuler le dernier commit git sans perdre mes modifications
1|shorthand|S'il te plaît, explique-moi pourquoi mon code Python plante|stp explique moi pk mon code python plante
1|shorthand|Je ne sais pas comment prendre rendez-vous chez le médecin en ligne|jsp comment prendre rdv chez le médecin en ligne
1|shorthand|Tu peux m'aider à remplir ma déclaration d'impôts, s'il te plaît ?|tu peux m'aider à remplir ma déclaration d'impôts stp
1|shorthand|Quand est-ce que mon colis sera livré ?|qd est-ce que mon colis sera livré ?
1|wrap|Comment changer le mot de passe du wifi de ma box ?|Bonjour, j'espère que vous allez bien. Comment changer le mot de passe du wifi de ma box ? Merci d'avance !
1|wrap|Combien de calories dans une banane ?|Petite question rapide : combien de calories dans une banane ?
1|wrap|Comment fusionner deux branches avec git ?|Désolé si c'est une question bête, mais comment fusionner deux branches avec git ?
1|wrap|Quel est le délai de rétractation pour un achat en ligne en France ?|Bonsoir, je me permets de vous écrire car je me demandais quel est le délai de rétractation pour un achat en ligne en France. Merci beaucoup.
1|wrap|Résume-moi la Révolution française en cinq lignes|Merci de me résumer la Révolution française en cinq lignes, c'est pour réviser
0|negation|J'ai reçu l'e-mail de confirmation de ma commande, que dois-je faire ?|Je n'ai pas reçu l'e-mail de confirmation de ma commande, que dois-je faire ?
0|negation|Comment lister les fichiers suivis par git ?|Comment lister les fichiers non suivis par git ?
0|negation|Quels aliments peut-on congeler ?|Quels aliments ne peut-on pas congeler ?
0|antonym|Comment épingler une conversation sur WhatsApp ?|Comment désépingler une conversation sur WhatsApp ?
0|antonym|Comment augmenter la luminosité de mes ampoules Hue depuis l'application ?|Comment baisser la luminosité de mes ampoules Hue depuis l'application ?
0|antonym|Comment ajouter un utilisateur à un groupe sous Linux ?|Comment retirer un utilisateur d'un groupe sous Linux ?
0|number|Où en est ma commande n° 58213 ?|Où en est ma commande n° 58231 ?
0|number|Combien font 15 % de 240 ?|Combien font 15 % de 420 ?
0|number|J'ai un budget de 300 euros pour offrir un cadeau à mon père qui adore la photo, tu as des idées ?|J'ai un budget de 100 euros pour offrir un cadeau à mon père qui adore la photo, tu as des idées ?
0|number|Propose-moi un itinéraire de 5 jours en Bretagne|Propose-moi un itinéraire de 10 jours en Bretagne
0|unit|Combien coûte l'abonnement annuel en euros ?|Combien coûte l'abonnement annuel en francs suisses ?
0|unit|Combien font 12 pieds en mètres ?|Combien font 12 pouces en mètres ?
0|unit|Mon bébé pèse 4 kilos à un mois, est-ce normal ?|Mon bébé pèse 4 livres à un mois, est-ce normal ?
0|entity|Quels papiers faut-il pour voyager au Maroc ?|Quels papiers faut-il pour voyager en Tunisie ?
0|entity|Comment installer Python sur Mac ?|Comment installer Python sur Windows ?
0|entity|Qui a écrit Les Misérables ?|Qui a écrit Les Fleurs du mal ?
0|time|Que faut-il manger avant une course à pied ?|Que faut-il manger après une course à pied ?
0|time|Quels trains partent pour Marseille ce soir ?|Quels trains partent pour Marseille demain matin ?
0|time|Comment afficher les commits git d'avant le 1er mars ?|Comment afficher les commits git d'après le 1er mars ?
0|role|Mon chien a mordu le chien du voisin, qui paie les frais de vétérinaire ?|Le chien du voisin a mordu mon chien, qui paie les frais de vétérinaire ?
0|role|Comment copier un fichier de mon PC vers le serveur avec scp ?|Comment copier un fichier du serveur vers mon PC avec scp ?
0|role|Comment virer de l'argent de mon livret A vers mon compte courant ?|Comment virer de l'argent de mon compte courant vers mon livret A ?
0|scope|Comment supprimer un message dans une conversation Messenger ?|Comment supprimer tous les messages d'une conversation Messenger ?
0|scope|Comment annuler un seul article de ma commande ?|Comment annuler toute ma commande ?
0|scope|Comment renommer un fichier en bash ?|Comment renommer tous les fichiers d'un dossier en bash ?
0|constraint|Recette de gâteau au chocolat|Recette de gâteau au chocolat sans gluten
0|constraint|Je pars dix jours au Japon en avril avec deux enfants, peux-tu me proposer un itinéraire ?|Je pars dix jours au Japon en avril avec deux enfants, peux-tu me proposer un itinéraire avec un budget de 2000 euros tout compris ?
0|constraint|Écris une fonction Python qui inverse une chaîne|Écris une fonction Python qui inverse une chaîne sans utiliser le slicing
0|topic|Comment réinitialiser mon mot de passe ?|Comment changer mon adresse e-mail ?
0|topic|Quelle est la différence entre un PEA et une assurance-vie ?|Comment est imposée une assurance-vie ?
0|topic|Combien de temps se conserve une soupe maison au frigo ?|Peut-on congeler une soupe maison ?
"""

DATA["nl"] = """
1|reorder|Hoe kan ik via de app mijn abonnement op Videoland opzeggen?|Hoe kan ik mijn abonnement op Videoland opzeggen via de app?
1|reorder|Wat is met de trein de snelste route van Utrecht naar Groningen?|Wat is de snelste route van Utrecht naar Groningen met de trein?
1|reorder|Kan ik mijn pakket nog ophalen bij een PostNL-punt als ik de afhaalcode kwijt ben?|Als ik de afhaalcode kwijt ben, kan ik mijn pakket dan nog ophalen bij een PostNL-punt?
1|reorder|Hoe maak ik in Excel een draaitabel?|Hoe maak ik een draaitabel in Excel?
1|synonym|Hoe wijzig ik mijn wachtwoord?|Hoe verander ik mijn wachtwoord?
1|synonym|Wanneer wordt mijn bestelling bezorgd?|Wanneer wordt mijn bestelling geleverd?
1|synonym|Hoe lang moet ik een zachtgekookt ei koken?|Hoeveel minuten kook je een zacht eitje?
1|synonym|Wat zijn de bijwerkingen van ibuprofen?|Welke nevenwerkingen heeft ibuprofen?
1|synonym|Hoe verwijder ik dubbele rijen uit een SQL-tabel?|Hoe haal ik dubbele records weg uit een SQL-tabel?
1|typo|Hoe krijg ik mijn geld terug?|hoe kryg ik mijn geld terug
1|typo|Wordt mijn bestelling vandaag nog verzonden?|word mijn bestelling vandaag nog verzonden
1|typo|Hoeveel kost een treinkaartje van Amsterdam naar Parijs?|hoevel kost een treinkaartje van amsterdam naar parys
1|typo|Wat is het verschil tussen een lijst en een tuple in Python?|wat is het verschil tussen een lyst en een tupel in python
1|typo|Mijn thermostaat reageert niet meer, wat kan ik doen?|mijn termostaat reageerd niet meer wat kan ik doen
1|register|Zou u mij kunnen vertellen hoe ik mijn adres kan wijzigen?|hoe pas ik mijn adres aan?
1|register|Kunt u mij uitleggen wat hypotheekrenteaftrek precies inhoudt?|wat is hypotheekrenteaftrek eigenlijk?
1|register|Ik verzoek u vriendelijk mijn account te verwijderen.|Verwijder mijn account.
1|register|Zou u zo vriendelijk willen zijn mij een recept voor erwtensoep te geven?|geef me een recept voor erwtensoep
1|frame|Hoe zet ik een datum om naar een string in Python?|Zet een datum om naar een string in Python
1|frame|Kun je 'ik heb honger' naar het Engels vertalen?|Vertaal 'ik heb honger' naar het Engels
1|frame|Wat is 17 keer 23?|Reken 17 keer 23 voor me uit
1|frame|Kun je een korte sollicitatiebrief schrijven voor een bijbaan als barista in een koffiezaak?|Schrijf een korte sollicitatiebrief voor een bijbaan als barista in een koffiezaak
1|frame|Hoe maak ik een nieuwe git-branch aan en schakel ik er meteen naar over?|Leg uit hoe ik een nieuwe git-branch aanmaak en er meteen naar overschakel
1|shorthand|Kun je even uitleggen hoe ik mijn wachtwoord reset?|kun je ff uitleggen hoe ik mn ww reset
1|shorthand|Wat moet ik meenemen naar mijn sollicitatiegesprek? Alvast bedankt|wat moet ik meenemen naar mn sollicitatiegesprek? abvd
1|shorthand|Weet je misschien een goed recept voor pannenkoeken?|weet je mss een goed recept voor pannenkoeken
1|shorthand|Kun je mijn tekst even nakijken op spelfouten, alsjeblieft?|kun je mn tekst ff nakijken op spelfouten aub
1|wrap|Hoe vraag ik een retourlabel aan?|Goedemiddag, ik heb een vraag: hoe vraag ik een retourlabel aan? Alvast bedankt voor de moeite.
1|wrap|Wat is de hoofdstad van Canada?|Even een quizvraag tussendoor: wat is de hoofdstad van Canada?
1|wrap|Hoe koppel ik mijn Philips Hue-lampen aan Google Home?|Sorry voor de misschien domme vraag, maar hoe koppel ik mijn Philips Hue-lampen aan Google Home?
1|wrap|Hoe bereken ik de btw over een bedrag inclusief btw?|Ik ben net begonnen als zzp'er en zit even vast: hoe bereken ik de btw over een bedrag inclusief btw?
1|wrap|Geef een regex die een Nederlandse postcode herkent|Hoi! Geef een regex die een Nederlandse postcode herkent, bedankt!
0|negation|Welke planten zijn giftig voor katten?|Welke planten zijn niet giftig voor katten?
0|negation|Hoe selecteer ik in SQL alle klanten die een bestelling hebben geplaatst?|Hoe selecteer ik in SQL alle klanten die geen bestelling hebben geplaatst?
0|negation|Welke groenten kun je rauw eten?|Welke groenten kun je niet rauw eten?
0|antonym|Hoe zet ik de automatische verlenging van mijn abonnement aan?|Hoe zet ik de automatische verlenging van mijn abonnement uit?
0|antonym|Hoe upload ik foto's naar Google Drive?|Hoe download ik foto's van Google Drive?
0|antonym|Hoe verhoog ik de temperatuur op mijn Nest-thermostaat?|Hoe verlaag ik de temperatuur op mijn Nest-thermostaat?
0|number|Waar blijft bestelling 300472?|Waar blijft bestelling 300427?
0|number|Hoeveel is 21% btw over 850 euro?|Hoeveel is 9% btw over 850 euro?
0|number|Wat is een goed trainingsschema om in 8 weken 5 kilometer te leren hardlopen?|Wat is een goed trainingsschema om in 8 weken 10 kilometer te leren hardlopen?
0|unit|Hoeveel is 100 dollar in euro?|Hoeveel is 100 pond in euro?
0|unit|Hoeveel inch is 30 centimeter?|Hoeveel voet is 30 centimeter?
0|unit|Hoeveel gram suiker gaat er in een eetlepel?|Hoeveel gram suiker gaat er in een theelepel?
0|entity|Wat zijn de openingstijden van het Rijksmuseum?|Wat zijn de openingstijden van het Van Gogh Museum?
0|entity|Hoe installeer ik Node.js op Ubuntu?|Hoe installeer ik Node.js op Fedora?
0|entity|Wie schreef Het Achterhuis?|Wie schreef De Avonden?
0|time|Mag ik eten voor een bloedafname?|Mag ik eten na een bloedafname?
0|time|Wat wordt het weer morgen in Amsterdam?|Wat was het weer gisteren in Amsterdam?
0|time|Hoe laat ik in git alle commits van vorige week zien?|Hoe laat ik in git alle commits van vandaag zien?
0|role|Schrijf een e-mail van een docent aan een ouder over slechte cijfers|Schrijf een e-mail van een ouder aan een docent over slechte cijfers
0|role|Mag mijn buurman mijn boom snoeien als de takken over de schutting hangen?|Mag ik de boom van mijn buurman snoeien als de takken over de schutting hangen?
0|role|Hoe kopieer ik een bestand van mijn laptop naar mijn telefoon?|Hoe kopieer ik een bestand van mijn telefoon naar mijn laptop?
0|scope|Hoe verwijder ik een foto uit mijn iCloud?|Hoe verwijder ik alle foto's uit mijn iCloud?
0|scope|Zet de lamp in de gang uit|Zet alle lampen in huis uit
0|scope|Hoe pas ik voorwaardelijke opmaak toe op één cel in Excel?|Hoe pas ik voorwaardelijke opmaak toe op een hele kolom in Excel?
0|constraint|Geef een recept voor lasagne|Geef een recept voor lasagne zonder vlees
0|constraint|Wat is een goede laptop om te programmeren?|Wat is een goede laptop om te programmeren onder de 700 euro?
0|constraint|We gaan met vier volwassenen een week naar de Ardennen, welke activiteiten raad je aan?|We gaan met vier volwassenen een week naar de Ardennen, welke activiteiten raad je aan als het de hele week regent?
0|constraint|Hoe sorteer ik een lijst in Python?|Hoe sorteer ik een lijst in Python zonder de originele lijst te veranderen?
0|topic|Hoe zeg ik mijn internetabonnement op?|Hoe verhuis ik mijn internetabonnement naar een nieuw adres?
0|topic|Op hoeveel vakantiedagen heb ik wettelijk recht?|Hoeveel vakantiegeld krijg ik?
0|topic|Wat is het verschil tussen git merge en git rebase?|Hoe los ik een mergeconflict op in git?
"""

DATA["zh"] = """
1|reorder|怎么在Excel里把两列合并成一列？|在Excel里怎么把两列合并成一列？
1|reorder|用Python怎么读取JSON文件？|怎么用Python读取JSON文件？
1|reorder|周末带孩子去北京，有什么好玩的地方？|北京有什么好玩的地方，适合周末带孩子去？
1|reorder|如果是用支付宝付的款，退款多久能到账？|退款多久能到账？我是用支付宝付的款。
1|synonym|怎么修改登录密码？|如何更改登录密码？
1|synonym|我的快递什么时候能到？|我的包裹什么时候能送到？
1|synonym|感冒了吃什么好得快？|感冒了吃什么恢复得快？
1|synonym|如何取消自动续费？|怎样关闭自动续费？
1|synonym|红烧肉怎么做才好吃？|红烧肉怎么烧才好吃？
1|typo|怎么申请退款？|怎么申请推款
1|typo|我的账号被冻结了怎么办？|我的帐号被冻结了怎么半
1|typo|Python里列表和元组有什么区别？|python里列表和元祖有什么区别
1|typo|附近有什么好吃的火锅店推荐吗？|附近有什么好吃的火锅店推建吗
1|typo|怎么设置智能音箱的闹钟？|怎么设制智能音箱的闹钟
1|register|请问您能帮我查一下这个订单的物流信息吗？|帮我查下这单物流
1|register|麻烦您告诉我如何开具电子发票，谢谢。|电子发票咋开？
1|register|您好，请问怎样注销这个账户？|这号咋注销
1|register|请问您能解释一下什么是复利吗？|复利是啥？
1|frame|能把“今天天气很好”翻译成英文吗？|把“今天天气很好”翻译成英文
1|frame|怎样用SQL查询工资最高的前十名员工？|用SQL查询工资最高的前十名员工
1|frame|你能帮我写一首关于秋天的五言绝句吗？|写一首关于秋天的五言绝句
1|frame|三分之二加四分之一等于多少？|算一下三分之二加四分之一
1|frame|我改了好几个文件还没提交，怎么用git把这些修改全部撤销？|我改了好几个文件还没提交，教我用git把这些修改全部撤销
1|shorthand|微信支付怎么解绑银行卡？|vx支付怎么解绑银行卡
1|shorthand|支付宝的花呗怎么关闭？|zfb花呗怎么关
1|shorthand|淘宝买的东西怎么申请退货？|tb买的东西咋退货
1|shorthand|拼多多的订单怎么取消？|pdd订单怎么取消
1|wrap|怎么查看电费余额？|你好，打扰一下，我想问问怎么查看电费余额？谢谢啦
1|wrap|鸡蛋煮几分钟是溏心的？|突然很想吃溏心蛋，想问一下鸡蛋煮几分钟是溏心的？
1|wrap|如何用正则表达式匹配中国大陆的手机号？|新手求助，不好意思问个基础问题：如何用正则表达式匹配中国大陆的手机号？
1|wrap|长城有多长？|我儿子刚才问我一个问题，我答不上来：长城有多长？
1|wrap|个人所得税怎么在App上退税？|您好，想请教一下，个人所得税怎么在App上退税？非常感谢！
0|negation|孕妇可以吃哪些水果？|孕妇不能吃哪些水果？
0|negation|怎么找出已经合并到main的git分支？|怎么找出还没合并到main的git分支？
0|negation|我上周在你们店买的羽绒服有点小，还没拆吊牌，可以换大一码吗？|我上周在你们店买的羽绒服有点小，已经拆了吊牌，可以换大一码吗？
0|antonym|怎么开启微信的消息免打扰？|怎么关闭微信的消息免打扰？
0|antonym|怎么把群聊置顶？|怎么取消群聊置顶？
0|antonym|如何把文件上传到百度网盘？|如何从百度网盘下载文件？
0|number|订单号20240517的物流到哪了？|订单号20240571的物流到哪了？
0|number|月薪一万五要交多少个税？|月薪一万二要交多少个税？
0|number|贷款30万，分20年还，每月要还多少？|贷款30万，分10年还，每月要还多少？
0|unit|一千美元等于多少人民币？|一千港币等于多少人民币？
0|unit|一斤等于多少克？|一磅等于多少克？
0|unit|5公里跑30分钟算快吗？|5英里跑30分钟算快吗？
0|entity|去日本旅游需要办什么签证？|去韩国旅游需要办什么签证？
0|entity|华为手机怎么截长图？|小米手机怎么截长图？
0|entity|《红楼梦》的作者是谁？|《西游记》的作者是谁？
0|time|春节前寄快递要注意什么？|春节后寄快递要注意什么？
0|time|怎么查看上个月的话费账单？|怎么查看本月的话费账单？
0|time|拔牙前可以吃东西吗？|拔牙后可以吃东西吗？
0|role|我借给朋友的钱他一直不还，怎么办？|我欠朋友的钱一直还不上，怎么办？
0|role|怎么把iPhone里的照片传到电脑上？|怎么把电脑里的照片传到iPhone上？
0|role|甲方拖欠乙方款项怎么办？|乙方拖欠甲方款项怎么办？
0|scope|怎么删除一条朋友圈？|怎么删除所有朋友圈？
0|scope|怎么退订单里的一件商品？|怎么退整个订单？
0|scope|把客厅的灯关掉|把家里所有的灯关掉
0|constraint|推荐一款适合学生的笔记本电脑|推荐一款适合学生、预算三千以内的笔记本电脑
0|constraint|北京三日游怎么安排？|带着七十多岁的老人，北京三日游怎么安排？
0|constraint|用Python写一个冒泡排序|用Python写一个冒泡排序，要求降序排列
0|topic|怎么修改支付密码？|怎么修改绑定的手机号？
0|topic|高血压有哪些症状？|高血压怎么治疗？
0|topic|公积金怎么提取？|公积金贷款利率是多少？
"""

DATA["de"] = """
1|reorder|Wie kann ich in Word ein Inhaltsverzeichnis automatisch erstellen?|Wie kann ich ein Inhaltsverzeichnis in Word automatisch erstellen?
1|reorder|Kann ich meine Bestellung noch stornieren, wenn sie schon verschickt wurde?|Wenn meine Bestellung schon verschickt wurde, kann ich sie dann noch stornieren?
1|reorder|Welche Unterlagen brauche ich für den Antrag auf Elterngeld?|Für den Antrag auf Elterngeld: Welche Unterlagen brauche ich?
1|reorder|Bei wie viel Grad backe ich Tiefkühlbrötchen im Backofen auf?|Tiefkühlbrötchen im Backofen aufbacken – bei wie viel Grad?
1|synonym|Wie ändere ich mein Passwort?|Wie wechsle ich mein Kennwort?
1|synonym|Wann kommt mein Paket an?|Wann wird mein Paket zugestellt?
1|synonym|Was hilft gegen Kopfschmerzen?|Was kann man gegen Kopfweh tun?
1|synonym|Wie kündige ich meinen Handyvertrag?|Wie beende ich meinen Mobilfunkvertrag?
1|synonym|Wie lösche ich einen Ordner unter Linux?|Wie entferne ich ein Verzeichnis unter Linux?
1|typo|Wie groß ist der Bodensee?|wie gross ist der bodensee
1|typo|Wie lange dauert die Rückerstattung?|wie lange dauert die ruckerstatung
1|typo|Wie viele Kalorien hat ein Brötchen?|wieviele kalorien hat ein brotchen
1|typo|Was ist der Unterschied zwischen einer GmbH und einer UG?|was ist der unterschid zwischen einer gmbh und einer ug
1|typo|Warum funktioniert mein WLAN-Drucker nicht mehr?|warum funtkioniert mein wlan drucker nicht mehr
1|register|Könnten Sie mir bitte mitteilen, wie ich meine Lieferadresse ändern kann?|wie änder ich meine lieferadresse
1|register|Würden Sie mir bitte erklären, was eine Riester-Rente ist?|was ist ne riester-rente?
1|register|Ich möchte Sie höflich bitten, mein Abonnement zum nächstmöglichen Zeitpunkt zu kündigen.|Kündige mein Abo zum nächstmöglichen Termin.
1|register|Dürfte ich Sie fragen, wie man einen Sauerteig ansetzt?|wie setzt man nen sauerteig an
1|frame|Wie kehre ich in Python eine Liste um?|Kehre in Python eine Liste um
1|frame|Kannst du mir 'Guten Appetit' ins Französische übersetzen?|Übersetze 'Guten Appetit' ins Französische
1|frame|Wie viel sind 15 Prozent von 80?|Rechne 15 Prozent von 80 aus
1|frame|Kannst du mir eine kurze, freundliche Absage für ein Vorstellungsgespräch formulieren, weil ich eine andere Stelle angenommen habe?|Formuliere mir eine kurze, freundliche Absage für ein Vorstellungsgespräch, weil ich eine andere Stelle angenommen habe
1|frame|Wie schreibe ich eine SQL-Abfrage, die alle Kunden aus Berlin zurückgibt?|Schreib mir bitte eine SQL-Abfrage, die alle Kunden aus Berlin zurückgibt
1|shorthand|Kannst du mir vielleicht erklären, wie ich meinen Router neu starte?|kannst du mir vllt erklären wie ich meinen router neustarte
1|shorthand|Ich habe keine Ahnung, wie man eine Steuererklärung macht. Kannst du mir helfen?|ka wie man ne steuererklärung macht, kannst du mir helfen
1|shorthand|Irgendwie lädt mein Handy nicht mehr, was kann ich tun?|iwie lädt mein handy nich mehr, was kann ich tun
1|shorthand|Wie lange ist Hackfleisch im Kühlschrank haltbar? Danke!|wie lange is hackfleisch im kühlschrank haltbar? thx
1|wrap|Wie beantrage ich einen neuen Personalausweis?|Hallo zusammen, ich hätte mal eine Frage: Wie beantrage ich einen neuen Personalausweis? Vielen Dank im Voraus!
1|wrap|Wer hat die Relativitätstheorie entwickelt?|Kurze Frage aus reiner Neugier: Wer hat die Relativitätstheorie entwickelt?
1|wrap|Wie richte ich eine Zeitschaltung für meine smarte Steckdose ein?|Entschuldige die Störung, aber wie richte ich eine Zeitschaltung für meine smarte Steckdose ein?
1|wrap|Wie rebase ich meinen Feature-Branch auf main?|Ich bin noch neu bei Git, sorry: Wie rebase ich meinen Feature-Branch auf main?
1|wrap|Welche Impfungen brauche ich für Thailand?|Guten Morgen! Welche Impfungen brauche ich für Thailand? Dankeschön und einen schönen Tag noch.
0|negation|Welche Kosten sind steuerlich absetzbar?|Welche Kosten sind steuerlich nicht absetzbar?
0|negation|Wie finde ich mit grep alle Zeilen, die das Wort 'Fehler' enthalten?|Wie finde ich mit grep alle Zeilen, die das Wort 'Fehler' nicht enthalten?
0|negation|Mein Rauchmelder piept alle paar Minuten, was soll ich tun?|Mein Rauchmelder piept beim Testen nicht, was soll ich tun?
0|antonym|Wie aktiviere ich den Dunkelmodus in Outlook?|Wie deaktiviere ich den Dunkelmodus in Outlook?
0|antonym|Wie füge ich in PostgreSQL eine Spalte zu einer Tabelle hinzu?|Wie entferne ich in PostgreSQL eine Spalte aus einer Tabelle?
0|antonym|Wie erhöhe ich mein Dispolimit?|Wie senke ich mein Dispolimit?
0|number|Wo ist meine Bestellung Nr. 7741?|Wo ist meine Bestellung Nr. 7714?
0|number|Wie viel netto bleibt bei 4.000 Euro brutto in Steuerklasse 1?|Wie viel netto bleibt bei 4.000 Euro brutto in Steuerklasse 3?
0|number|Was kostet ein ICE-Ticket für 2 Erwachsene von Hamburg nach München?|Was kostet ein ICE-Ticket für 3 Erwachsene von Hamburg nach München?
0|unit|Wie viel sind 50 Dollar in Euro?|Wie viel sind 50 Franken in Euro?
0|unit|Wie viele Gramm sind 2 Unzen?|Wie viele Gramm sind 2 Pfund?
0|unit|Ich fahre mit einem Mietwagen in den USA, ist 100 km/h auf dem Highway erlaubt?|Ich fahre mit einem Mietwagen in den USA, ist 100 mph auf dem Highway erlaubt?
0|entity|Welche Sehenswürdigkeiten gibt es in Dresden?|Welche Sehenswürdigkeiten gibt es in Leipzig?
0|entity|Wie setze ich mein Samsung-Handy auf Werkseinstellungen zurück?|Wie setze ich mein Pixel-Handy auf Werkseinstellungen zurück?
0|entity|Wer hat die Zauberflöte komponiert?|Wer hat den Freischütz komponiert?
0|time|Darf ich vor einer Impfung Sport machen?|Darf ich nach einer Impfung Sport machen?
0|time|Welche Züge fahren heute Abend nach Köln?|Welche Züge fahren morgen früh nach Köln?
0|time|Was muss ich vor dem Umzug alles ummelden?|Was muss ich nach dem Umzug alles ummelden?
0|role|Kann mein Arbeitgeber mir kündigen, während ich krankgeschrieben bin?|Kann ich meinem Arbeitgeber kündigen, während ich krankgeschrieben bin?
0|role|Wie übertrage ich Kontakte vom iPhone auf ein Android-Handy?|Wie übertrage ich Kontakte von einem Android-Handy aufs iPhone?
0|role|Wie viel Unterhalt muss der Vater an die Mutter zahlen?|Wie viel Unterhalt muss die Mutter an den Vater zahlen?
0|scope|Wie lösche ich einen Kontakt in WhatsApp?|Wie lösche ich alle Kontakte in WhatsApp?
0|scope|Schalte das Licht im Bad aus|Schalte alle Lichter im Haus aus
0|scope|Wie ersetze ich in Python das erste Vorkommen eines Zeichens in einem String?|Wie ersetze ich in Python alle Vorkommen eines Zeichens in einem String?
0|constraint|Rezept für Pfannkuchen|Rezept für Pfannkuchen ohne Eier
0|constraint|Gute Hotels in der Wiener Innenstadt|Gute Hotels in der Wiener Innenstadt mit eigenem Parkplatz
0|constraint|Wie lese ich eine CSV-Datei in Python ein?|Wie lese ich eine CSV-Datei in Python ein, ohne pandas zu benutzen?
0|topic|Wie kündige ich meine Hausratversicherung?|Was deckt eine Hausratversicherung ab?
0|topic|Wie lange ist ein Reisepass gültig?|Wie lange dauert es, einen Reisepass zu bekommen?
0|topic|Was ist der Unterschied zwischen einem ETF und einem aktiven Aktienfonds?|Wie kaufe ich einen ETF?
"""

DATA["es"] = """
1|reorder|¿Cómo puedo cambiar la dirección de envío de mi pedido?|La dirección de envío de mi pedido, ¿cómo la puedo cambiar?
1|reorder|¿Qué necesito para viajar a México con pasaporte español?|Con pasaporte español, ¿qué necesito para viajar a México?
1|reorder|¿Cuánto tiempo hay que hervir los huevos para que queden duros?|Para que los huevos queden duros, ¿cuánto tiempo hay que hervirlos?
1|reorder|En JavaScript, ¿cómo elimino un elemento de un array?|¿Cómo elimino un elemento de un array en JavaScript?
1|synonym|¿Cómo restablezco mi contraseña?|¿Cómo recupero mi clave?
1|synonym|¿Cuándo llega mi paquete?|¿Cuándo me entregan el paquete?
1|synonym|¿Qué es bueno para el dolor de garganta?|¿Qué sirve para el dolor de garganta?
1|synonym|¿Cómo doy de baja mi suscripción a Spotify?|¿Cómo cancelo mi suscripción a Spotify?
1|synonym|Ideas para una cena ligera|Ideas para una cena liviana
1|typo|¿Dónde está mi pedido?|donde esta mi pedido
1|typo|¿Cómo se hace una tortilla de patatas?|como se ase una tortilla de patatas
1|typo|¿Por qué no me llega el código de verificación?|porque no me llega el codigo de verificasion
1|typo|¿Cuál es la diferencia entre una tarjeta de débito y una de crédito?|cual es la diferiencia entre una tarjeta de devito y una de credito
1|typo|¿Cómo configuro la calefacción para que se encienda sola a las siete de la mañana?|como configuro la calefaccion para que se encienda sola a las siete de la mañana
1|register|¿Podría usted indicarme cómo solicitar una factura?|oye, ¿cómo pido una factura?
1|register|Le agradecería que me explicara qué es la inflación.|¿qué es la inflación?
1|register|¿Sería tan amable de cancelar mi reserva para el viernes?|Cancela mi reserva del viernes.
1|register|Disculpe, ¿me podría recomendar un libro para aprender a invertir?|recomiéndame un libro pa aprender a invertir
1|frame|¿Cómo convierto una lista en un conjunto en Python?|Convierte una lista en un conjunto en Python
1|frame|¿Me puedes traducir 'gracias por todo' al alemán?|Traduce 'gracias por todo' al alemán
1|frame|¿Cuánto es 12 al cuadrado?|Calcula 12 al cuadrado
1|frame|¿Puedes escribir un mensaje de felicitación para el cumpleaños de mi jefe?|Escribe un mensaje de felicitación para el cumpleaños de mi jefe
1|frame|¿Cómo hago un git stash solo de algunos archivos?|Dime cómo hacer un git stash solo de algunos archivos
1|shorthand|¿Por qué mi móvil se calienta tanto?|xq mi movil se calienta tanto
1|shorthand|¿Qué puedo cocinar con pollo y arroz?|q puedo cocinar con pollo y arroz
1|shorthand|Por favor, dime cómo cambio la contraseña del wifi|xfa dime como cambio la contraseña del wifi
1|shorthand|¿También puedo pagar con PayPal?|tmb puedo pagar con paypal?
1|wrap|¿Cómo solicito un reembolso?|Hola, buenas tardes. Quería saber cómo solicito un reembolso. Muchas gracias de antemano.
1|wrap|¿Cuál es el río más largo de Europa?|Una duda que me surgió viendo un documental: ¿cuál es el río más largo de Europa?
1|wrap|¿Cómo conecto mi Alexa al wifi nuevo?|Perdón por la molestia, ¿cómo conecto mi Alexa al wifi nuevo?
1|wrap|Expresión regular para validar un correo electrónico|Buenas, necesito una expresión regular para validar un correo electrónico, gracias
1|wrap|¿Cuántas horas debe dormir un adulto?|¡Hola! Me da curiosidad, ¿cuántas horas debe dormir un adulto? Gracias
0|negation|¿Qué alimentos son recomendables si tengo gastritis?|¿Qué alimentos no son recomendables si tengo gastritis?
0|negation|¿Cómo selecciono en SQL las filas donde el email es nulo?|¿Cómo selecciono en SQL las filas donde el email no es nulo?
0|negation|¿Puedo devolver un producto que ya he usado?|¿Puedo devolver un producto que no he usado?
0|antonym|¿Cómo activo las notificaciones de Instagram?|¿Cómo desactivo las notificaciones de Instagram?
0|antonym|¿Cómo fijo un mensaje en un grupo de Telegram?|¿Cómo desfijo un mensaje en un grupo de Telegram?
0|antonym|¿Cómo subo el volumen del altavoz de Google?|¿Cómo bajo el volumen del altavoz de Google?
0|number|¿Dónde está mi pedido 88105?|¿Dónde está mi pedido 88150?
0|number|¿Cuánto es el 21 % de IVA sobre 300 euros?|¿Cuánto es el 10 % de IVA sobre 300 euros?
0|number|Quiero ahorrar para la entrada de un piso; si guardo 400 euros al mes, ¿cuánto tendré en 3 años?|Quiero ahorrar para la entrada de un piso; si guardo 400 euros al mes, ¿cuánto tendré en 5 años?
0|number|Receta de bizcocho para un molde de 20 cm|Receta de bizcocho para un molde de 26 cm
0|unit|¿Cuántos pesos mexicanos son 100 dólares?|¿Cuántos pesos mexicanos son 100 euros?
0|unit|¿Cuántos mililitros son 3 onzas líquidas?|¿Cuántos mililitros son 3 cucharadas?
0|unit|Mi maleta pesa 23 kilos, ¿puedo facturarla con Iberia?|Mi maleta pesa 23 libras, ¿puedo facturarla con Iberia?
0|entity|¿Qué ver en Sevilla en dos días?|¿Qué ver en Granada en dos días?
0|entity|¿Cómo instalo Docker en Windows?|¿Cómo instalo Docker en macOS?
0|entity|¿Quién pintó Las Meninas?|¿Quién pintó el Guernica?
0|time|¿Se puede beber alcohol antes de una operación?|¿Se puede beber alcohol después de una operación?
0|time|¿Qué vuelos salen hoy de Madrid a Roma?|¿Qué vuelos salen mañana de Madrid a Roma?
0|time|¿Cómo consulto los movimientos de la cuenta del mes pasado?|¿Cómo consulto los movimientos de la cuenta de este mes?
0|role|Escribe una carta de un cliente al banco reclamando una comisión|Escribe una carta del banco a un cliente reclamando una comisión
0|role|¿Cómo paso fotos del móvil al ordenador?|¿Cómo paso fotos del ordenador al móvil?
0|role|Mi hijo le pegó a un compañero en el colegio, ¿qué hago?|Un compañero le pegó a mi hijo en el colegio, ¿qué hago?
0|scope|¿Cómo borro un correo en Gmail?|¿Cómo borro todos los correos en Gmail?
0|scope|Apaga la luz del dormitorio|Apaga todas las luces de la casa
0|scope|¿Cómo cancelo un producto de mi pedido?|¿Cómo cancelo el pedido completo?
0|constraint|Receta de paella|Receta de paella sin marisco
0|constraint|¿Qué móvil me recomiendas?|¿Qué móvil me recomiendas por menos de 300 euros?
0|constraint|Estoy planeando una ruta de una semana en coche por el norte de España, ¿qué me recomiendas ver?|Estoy planeando una ruta de una semana en coche por el norte de España con mi perro, ¿qué me recomiendas ver?
0|constraint|¿Cómo uno dos tablas en SQL?|¿Cómo uno dos tablas en SQL conservando las filas que no tienen coincidencia?
0|topic|¿Cómo cambio mi número de teléfono en la app?|¿Cómo cambio mi foto de perfil en la app?
0|topic|¿Cuáles son los síntomas de la gripe?|¿Cuánto dura la gripe?
0|topic|¿Cómo hago la declaración de la renta?|¿Cuándo empieza la campaña de la renta?
"""

DATA["it"] = """
1|reorder|Come posso disdire l'abbonamento a DAZN dal sito?|Dal sito, come posso disdire l'abbonamento a DAZN?
1|reorder|Quanto tempo ci vuole per cuocere il risotto ai funghi?|Per cuocere il risotto ai funghi, quanto tempo ci vuole?
1|reorder|In Python come si legge un file riga per riga?|Come si legge un file riga per riga in Python?
1|reorder|Cosa vedere a Napoli in un weekend?|In un weekend a Napoli, cosa vedere?
1|synonym|Come cambio la password?|Come modifico la password?
1|synonym|Quando arriva il mio ordine?|Quando mi consegnano l'ordine?
1|synonym|Cosa posso prendere per il mal di testa?|Cosa posso assumere per il mal di testa?
1|synonym|Come si elimina un account Instagram?|Come si cancella un account Instagram?
1|synonym|Qual è il modo più veloce per imparare l'inglese?|Qual è il metodo più rapido per imparare l'inglese?
1|typo|Perché il mio ordine è in ritardo?|perche il mio ordine e in ritardo
1|typo|Qual è la differenza tra un conto corrente e un conto deposito?|qual'è la differenza tra un conto corrente e un conto deposito
1|typo|Come si fa la carbonara?|come si fà la carbonara
1|typo|Come faccio a collegare la stampante al wi-fi?|come facio a colegare la stampante al wifi
1|typo|Quante calorie ha un piatto di pasta al pomodoro?|quante calorie a un piatto di pasta al pomodoro
1|register|Potrebbe gentilmente indicarmi come richiedere il reso?|come faccio il reso?
1|register|Le sarei grato se mi spiegasse cos'è lo SPID.|che è lo spid?
1|register|Vorrei cortesemente chiederle di annullare la mia prenotazione di sabato.|annulla la prenotazione di sabato
1|register|Mi saprebbe consigliare un vino da abbinare alla pizza?|che vino ci sta con la pizza?
1|frame|Come si converte una stringa in maiuscolo in JavaScript?|Converti una stringa in maiuscolo in JavaScript
1|frame|Mi traduci 'buon viaggio' in spagnolo?|Traduci 'buon viaggio' in spagnolo
1|frame|Quanto fa 250 diviso 8?|Calcola 250 diviso 8
1|frame|Puoi scrivermi una lettera di dimissioni breve e cordiale, con un preavviso di trenta giorni, da consegnare al mio responsabile?|Scrivimi una lettera di dimissioni breve e cordiale, con un preavviso di trenta giorni, da consegnare al mio responsabile
1|frame|Come faccio a vedere la cronologia dei commit di un solo file con git?|Mostrami come vedere la cronologia dei commit di un solo file con git
1|shorthand|Perché non riesco ad accedere al mio account?|xké nn riesco ad accedere al mio account
1|shorthand|Quando arriva il rimborso? Grazie|qnd arriva il rimborso? grz
1|shorthand|Mi consigli qualche serie TV da guardare?|mi consigli qlc serie tv da guardare
1|shorthand|Per favore, dimmi come si prepara il tiramisù|x favore dimmi come si prepara il tiramisù
1|wrap|Come attivo la carta di credito?|Buongiorno, avrei una domanda: come attivo la carta di credito? Grazie mille in anticipo.
1|wrap|Chi ha scritto la Divina Commedia?|Mio figlio me l'ha chiesto e non me lo ricordo: chi ha scritto la Divina Commedia?
1|wrap|Come programmo il termostato Netatmo?|Scusate il disturbo, come programmo il termostato Netatmo?
1|wrap|Query SQL per contare gli ordini per cliente|Ciao! Mi serve una query SQL per contare gli ordini per cliente, grazie
1|wrap|Quali documenti servono per il rinnovo della carta d'identità?|Salve, scusi, quali documenti servono per il rinnovo della carta d'identità? Grazie e buona giornata
0|negation|Quali cibi si possono mangiare con il colesterolo alto?|Quali cibi non si possono mangiare con il colesterolo alto?
0|negation|Quali spese sono detraibili nel 730?|Quali spese non sono detraibili nel 730?
0|negation|Ho ricevuto il codice OTP, cosa devo fare?|Non ho ricevuto il codice OTP, cosa devo fare?
0|antonym|Come accendo il riscaldamento da remoto con l'app?|Come spengo il riscaldamento da remoto con l'app?
0|antonym|Come aggiungo una firma alle email in Outlook?|Come rimuovo la firma dalle email in Outlook?
0|antonym|Come si comprime una cartella in zip su Mac?|Come si decomprime una cartella zip su Mac?
0|number|Il mio ordine 40519 è stato spedito?|Il mio ordine 40591 è stato spedito?
0|number|Quanto si paga di IMU per una seconda casa con rendita catastale di 800 euro?|Quanto si paga di IMU per una seconda casa con rendita catastale di 1.800 euro?
0|number|C'è un treno per Firenze alle 8:15?|C'è un treno per Firenze alle 18:15?
0|unit|Quanti euro sono 200 franchi svizzeri?|Quanti euro sono 200 sterline?
0|unit|Quanti grammi sono 3 cucchiai di zucchero?|Quanti grammi sono 3 cucchiaini di zucchero?
0|unit|Quanti chilometri sono 26 miglia?|Quanti chilometri sono 26 miglia nautiche?
0|entity|Come arrivo all'aeroporto di Fiumicino da Roma Termini?|Come arrivo all'aeroporto di Ciampino da Roma Termini?
0|entity|Come installo WhatsApp sul tablet Android?|Come installo WhatsApp sull'iPad?
0|entity|In che anno è morto Leonardo da Vinci?|In che anno è morto Michelangelo?
0|time|Cosa posso mangiare prima di una colonscopia?|Cosa posso mangiare dopo una colonscopia?
0|time|Che tempo fa oggi a Bologna?|Che tempo farà domani a Bologna?
0|time|Come vedo le spese della settimana scorsa nell'app della banca?|Come vedo le spese di questa settimana nell'app della banca?
0|role|Come trasferisco soldi da PayPal al conto in banca?|Come trasferisco soldi dal conto in banca a PayPal?
0|role|Il mio collega mi ha denunciato, cosa succede adesso?|Ho denunciato il mio collega, cosa succede adesso?
0|role|Scrivi una email del professore allo studente per rimandare l'esame|Scrivi una email dello studente al professore per rimandare l'esame
0|scope|Come elimino una chat su Telegram?|Come elimino tutte le chat su Telegram?
0|scope|Spegni la luce della cucina|Spegni tutte le luci
0|scope|Come seleziono una sola colonna in pandas?|Come seleziono tutte le colonne tranne una in pandas?
0|constraint|Ricetta della pasta alla Norma|Ricetta della pasta alla Norma senza friggere le melanzane
0|constraint|Consigliami un hotel economico a Venezia|Consigliami un hotel economico a Venezia che accetti cani
0|constraint|Devo preparare una cena per otto persone sabato sera, mi suggerisci un menù completo?|Devo preparare una cena per otto persone sabato sera, mi suggerisci un menù completo senza glutine e senza lattosio?
0|constraint|Come rimuovo i duplicati da una lista in Python?|Come rimuovo i duplicati da una lista in Python mantenendo l'ordine?
0|topic|Come recupero la password di PosteID?|Come cambio il numero di telefono associato a PosteID?
0|topic|Quali sono i sintomi del diabete?|Come si cura il diabete?
0|topic|Come funziona il mutuo a tasso fisso?|Conviene estinguere il mutuo in anticipo?
"""

DATA["pt"] = """
1|reorder|Como faço para rastrear meu pedido pelo aplicativo?|Pelo aplicativo, como faço para rastrear meu pedido?
1|reorder|Quanto tempo leva para cozinhar arroz integral na panela de pressão?|Na panela de pressão, quanto tempo leva para cozinhar arroz integral?
1|reorder|Como instalo pacotes com pip no Windows?|No Windows, como instalo pacotes com pip?
1|reorder|O que fazer em Lisboa num fim de semana?|Num fim de semana em Lisboa, o que fazer?
1|synonym|Como troco minha senha?|Como altero minha senha?
1|synonym|Quando chega minha encomenda?|Quando minha encomenda vai ser entregue?
1|synonym|O que é bom para azia?|O que ajuda a aliviar a azia?
1|synonym|Como cancelo minha assinatura da Netflix?|Como encerro minha assinatura da Netflix?
1|synonym|Qual é o maior país da América do Sul?|Qual é o país mais extenso da América do Sul?
1|typo|Não consigo entrar na minha conta|nao consigo entra na minha conta
1|typo|Como faço um pudim de leite condensado?|como faco um pudim de leite condensado
1|typo|Qual é a diferença entre CDB e Tesouro Direto?|qual e a diferenca entre cdb e tesouro direto
1|typo|Por que meu celular está esquentando tanto?|porque meu celular esta esquentando tanto
1|typo|Como configuro o Wi-Fi da lâmpada inteligente?|como configuro o wifi da lampada inteligente
1|register|Poderia, por gentileza, informar como solicito a segunda via do boleto?|como tiro a segunda via do boleto?
1|register|O senhor poderia me explicar o que é o FGTS?|FGTS é o quê?
1|register|Gostaria de solicitar, por gentileza, o cancelamento do meu plano.|Cancela meu plano.
1|register|Seria possível me recomendar um livro sobre educação financeira?|me indica um livro de educação financeira aí
1|frame|Como remover espaços no início e no fim de uma string em Python?|Remova os espaços do início e do fim de uma string em Python
1|frame|Pode traduzir 'saudade' para o inglês?|Traduza 'saudade' para o inglês
1|frame|Quanto é 45 vezes 12?|Calcule 45 vezes 12
1|frame|Você pode escrever uma legenda divertida para uma foto minha com os amigos na praia no fim de semana?|Escreva uma legenda divertida para uma foto minha com os amigos na praia no fim de semana
1|frame|Como crio um índice em uma tabela no MySQL?|Me mostra como criar um índice em uma tabela no MySQL
1|shorthand|Você sabe por que o Pix não caiu na minha conta?|vc sabe pq o pix n caiu na minha conta
1|shorthand|Por favor, me ajuda a escrever uma mensagem de aniversário para minha mãe|pfv me ajuda a escrever uma msg de aniversário pra minha mãe
1|shorthand|Quando vou receber o reembolso? Obrigado|qnd vou receber o reembolso? obg
1|shorthand|Também posso pagar com cartão de débito?|tbm posso pagar com cartão de débito?
1|wrap|Como emito a nota fiscal de serviço?|Bom dia! Sou novo nisso e queria saber: como emito a nota fiscal de serviço? Obrigado desde já.
1|wrap|Quem descobriu o Brasil?|Dúvida rápida aqui: quem descobriu o Brasil?
1|wrap|Como conecto a Alexa na TV?|Desculpa incomodar, mas como conecto a Alexa na TV?
1|wrap|Regex para validar CPF|Oi, tudo bem? Preciso de uma regex para validar CPF, valeu!
1|wrap|Quantos copos de água devo beber por dia?|Olá, fiquei curiosa: quantos copos de água devo beber por dia? Obrigada
0|negation|Quais frutas o cachorro pode comer?|Quais frutas o cachorro não pode comer?
0|negation|Como listo em SQL os usuários que fizeram login este mês?|Como listo em SQL os usuários que não fizeram login este mês?
0|negation|Quais documentos são obrigatórios para tirar o passaporte?|Quais documentos não são obrigatórios para tirar o passaporte?
0|antonym|Como ligo o ar-condicionado pelo aplicativo?|Como desligo o ar-condicionado pelo aplicativo?
0|antonym|Como arquivo uma conversa no WhatsApp?|Como desarquivo uma conversa no WhatsApp?
0|antonym|Como aumento o limite do cartão de crédito?|Como diminuo o limite do cartão de crédito?
0|number|Cadê meu pedido 11926?|Cadê meu pedido 11962?
0|number|Quanto rendem 10 mil reais na poupança em 1 ano?|Quanto rendem 10 mil reais na poupança em 5 anos?
0|number|Qual o tamanho de TV ideal para assistir a 2 metros de distância?|Qual o tamanho de TV ideal para assistir a 4 metros de distância?
0|unit|Quanto é 50 dólares em reais?|Quanto é 50 euros em reais?
0|unit|Quantos gramas tem uma xícara de farinha?|Quantos gramas tem uma colher de sopa de farinha?
0|unit|Quantos litros tem um galão americano?|Quantos litros tem um galão imperial?
0|entity|O que fazer em Florianópolis?|O que fazer em Salvador?
0|entity|Como instalo o Java no Ubuntu?|Como instalo o Java no Mac?
0|entity|Quem escreveu Dom Casmurro?|Quem escreveu Grande Sertão: Veredas?
0|time|Posso tomar café antes do exame de sangue?|Posso tomar café depois do exame de sangue?
0|time|O que fazer antes de uma entrevista de emprego?|O que fazer depois de uma entrevista de emprego?
0|time|Como desfaço o último commit antes de dar push?|Como desfaço o último commit depois de dar push?
0|role|Como transfiro dinheiro da poupança para a conta corrente?|Como transfiro dinheiro da conta corrente para a poupança?
0|role|O inquilino pode cobrar do proprietário as reformas do apartamento?|O proprietário pode cobrar do inquilino as reformas do apartamento?
0|role|Escreva uma mensagem do chefe parabenizando o funcionário pela promoção|Escreva uma mensagem do funcionário parabenizando o chefe pela promoção
0|scope|Como apago uma foto do Google Fotos?|Como apago todas as fotos do Google Fotos?
0|scope|Desliga a luz da sala|Desliga todas as luzes da casa
0|scope|Como cancelo só um item do pedido?|Como cancelo o pedido inteiro?
0|constraint|Receita de brigadeiro|Receita de brigadeiro sem leite condensado
0|constraint|Qual notebook comprar para editar vídeo?|Qual notebook comprar para editar vídeo gastando até 4 mil reais?
0|constraint|Vou passar 15 dias no Nordeste em julho com meu marido, pode montar um roteiro?|Vou passar 15 dias no Nordeste em julho com meu marido, pode montar um roteiro só com lugares acessíveis para cadeirante?
0|constraint|Como junto dois DataFrames no pandas?|Como junto dois DataFrames no pandas sem duplicar colunas?
0|topic|Como faço a portabilidade do número?|Como bloqueio um chip roubado?
0|topic|Quais são os sintomas da dengue?|Como prevenir a dengue?
0|topic|Como declaro o imposto de renda?|Quando sai a restituição do imposto de renda?
"""

DATA["ru"] = """
1|reorder|Как отменить подписку на Яндекс Плюс через приложение?|Как через приложение отменить подписку на Яндекс Плюс?
1|reorder|Сколько варить гречку на воде?|Гречку на воде сколько варить?
1|reorder|Как в Python объединить два словаря?|Как объединить два словаря в Python?
1|reorder|Что посмотреть в Казани за два дня?|За два дня в Казани что посмотреть?
1|synonym|Как поменять пароль?|Как изменить пароль?
1|synonym|Когда привезут мой заказ?|Когда доставят мой заказ?
1|synonym|Что помогает от изжоги?|Чем снять изжогу?
1|synonym|Как удалить аккаунт ВКонтакте?|Как удалить страницу ВКонтакте?
1|synonym|Как быстро выучить английский?|Как быстро освоить английский?
1|typo|Где мой заказ?|где мой закаж
1|typo|Почему не приходит код подтверждения?|почему не приходит код подтвержения
1|typo|Как приготовить борщ?|как приготовить борш
1|typo|Чем отличается ИП от самозанятого?|чем отличаеться ип от самозанятого
1|typo|Можно ещё вернуть деньги за билет, если поезд через два часа?|можно еще вернуть деньги за билет если поезд через два часа
1|register|Не могли бы вы подсказать, как оформить возврат?|как оформить возврат
1|register|Будьте добры, объясните, что такое ключевая ставка.|чё такое ключевая ставка?
1|register|Прошу вас отменить моё бронирование на субботу.|Отмени бронь на субботу.
1|register|Подскажите, пожалуйста, какое вино лучше подать к шашлыку?|какое вино к шашлыку взять?
1|frame|Как перевернуть строку в Python?|Переверни строку в Python
1|frame|Можешь перевести на английский «приятного аппетита»?|Переведи на английский «приятного аппетита»
1|frame|Сколько будет 37 умножить на 14?|Посчитай 37 умножить на 14
1|frame|Можешь написать тёплое поздравление с днём рождения для коллеги, с которой мы работаем вместе уже пять лет?|Напиши тёплое поздравление с днём рождения для коллеги, с которой мы работаем вместе уже пять лет
1|frame|Как в git переименовать ветку?|Подскажи, как переименовать ветку в git
1|shorthand|Как восстановить аккаунт в Telegram?|как восстановить акк в тг
1|shorthand|Напиши, пожалуйста, поздравление с днём рождения для сестры|напиши плз поздравление с др для сестры
1|shorthand|Может быть, посоветуешь хороший фильм на вечер?|мб посоветуешь норм фильм на вечер
1|shorthand|Очень болит спина после тренировки, что делать?|оч болит спина после трени, что делать
1|wrap|Как получить налоговый вычет за лечение?|Здравствуйте! Подскажите, пожалуйста, как получить налоговый вычет за лечение? Заранее спасибо.
1|wrap|Какая самая высокая гора в России?|Поспорили с другом, рассудите нас: какая самая высокая гора в России?
1|wrap|Как подключить умную лампочку к Алисе?|Извините за глупый вопрос, но как подключить умную лампочку к Алисе?
1|wrap|SQL-запрос для поиска дубликатов в таблице|Привет! Нужен SQL-запрос для поиска дубликатов в таблице, буду благодарен
1|wrap|Сколько калорий в пельменях?|Сижу на диете, и вот стало интересно: сколько калорий в пельменях?
0|negation|Какие продукты можно есть при гастрите?|Какие продукты нельзя есть при гастрите?
0|negation|Как выбрать в SQL заказы, которые оплачены?|Как выбрать в SQL заказы, которые не оплачены?
0|negation|Что делать, если пришло СМС с кодом от банка, а я ничего не запрашивал?|Что делать, если не пришло СМС с кодом от банка, а я его запрашивал?
0|antonym|Как включить тёмную тему в Telegram?|Как выключить тёмную тему в Telegram?
0|antonym|Как закрепить сообщение в чате?|Как открепить сообщение в чате?
0|antonym|Как добавить пользователя в sudoers?|Как удалить пользователя из sudoers?
0|number|Где мой заказ № 6182?|Где мой заказ № 6128?
0|number|Сколько налога удержат с зарплаты 80 тысяч рублей?|Сколько налога удержат с зарплаты 180 тысяч рублей?
0|number|Сколько стоит ОСАГО на машину в 150 лошадиных сил?|Сколько стоит ОСАГО на машину в 105 лошадиных сил?
0|unit|Сколько рублей в 100 долларах?|Сколько рублей в 100 юанях?
0|unit|Сколько сантиметров в 5 дюймах?|Сколько сантиметров в 5 футах?
0|unit|Сколько будет 120 км/ч в милях в час?|Сколько будет 120 км/ч в метрах в секунду?
0|entity|Что посмотреть в Санкт-Петербурге?|Что посмотреть в Калининграде?
0|entity|Как установить PostgreSQL на Ubuntu?|Как установить MySQL на Ubuntu?
0|entity|Кто написал «Мастера и Маргариту»?|Кто написал «Тихий Дон»?
0|time|Можно ли мыться после прививки?|Можно ли мыться перед прививкой?
0|time|Какая погода будет в Москве завтра?|Какая погода была в Москве вчера?
0|time|Что нужно сделать до увольнения с работы?|Что нужно сделать после увольнения с работы?
0|role|Как перевести деньги с карты Сбера на карту Т-Банка?|Как перевести деньги с карты Т-Банка на карту Сбера?
0|role|Сосед сверху затопил мою квартиру, что делать?|Я затопил квартиру соседа снизу, что делать?
0|role|Напиши письмо от арендатора арендодателю с просьбой сделать ремонт|Напиши письмо от арендодателя арендатору с просьбой сделать ремонт
0|scope|Как удалить одно сообщение в WhatsApp?|Как удалить все сообщения в WhatsApp?
0|scope|Выключи свет в спальне|Выключи свет во всей квартире
0|scope|Как вернуть один товар из заказа?|Как вернуть весь заказ?
0|constraint|Рецепт сырников|Рецепт сырников без муки
0|constraint|Подбери недорогой отель в Сочи|Подбери недорогой отель в Сочи с бассейном
0|constraint|Как отсортировать словарь по значениям в Python?|Как отсортировать словарь по значениям в Python по убыванию?
0|topic|Как восстановить пароль от Госуслуг?|Как подтвердить учётную запись на Госуслугах?
0|topic|Как лечить ангину?|Заразна ли ангина?
0|topic|Как открыть ИП?|Какие налоги платит ИП?
"""

DATA["ja"] = """
1|reorder|アプリからAmazonプライムを解約する方法は？|Amazonプライムをアプリから解約する方法は？
1|reorder|Pythonでリストを逆順にするには？|リストを逆順にするには、Pythonでどうすればいい？
1|reorder|京都を2日間観光するなら、おすすめの場所はどこ？|おすすめの場所はどこ？京都を2日間観光するなら
1|reorder|炊飯器で玄米を炊くときの水の量は？|玄米を炊飯器で炊くときの水の量は？
1|synonym|パスワードを変更したい|パスワードを変えたい
1|synonym|注文した商品はいつ届きますか？|注文した商品はいつ到着しますか？
1|synonym|頭痛に効く市販薬は？|頭痛に効く、ドラッグストアで買える薬は？
1|synonym|アカウントを削除するには？|アカウントを消すには？
1|synonym|英語を早く上達させるコツは？|英語を早く上達させる秘訣は？
1|typo|返品の方法を教えてください|へんぴんの方法をおしえてください
1|typo|パスワードを忘れました|パスワードをわすれました
1|typo|確定申告のやり方がわかりません|確定深刻のやり方がわかりません
1|typo|肉じゃがの作り方を教えて|にくじゃがの作りかた教えて
1|typo|エアコンのタイマーの設定方法は？|エアコンのタイマーの設定方法わ？
1|register|恐れ入りますが、配送先住所の変更方法を教えていただけますでしょうか。|配送先の住所ってどうやって変えるの？
1|register|NISAとは何か、ご説明いただけますか。|NISAって何？
1|register|お手数ですが、私の予約をキャンセルしていただけますか。|予約キャンセルして
1|register|お忙しいところ恐縮ですが、おすすめの日本酒を教えていただけますか。|おすすめの日本酒教えて
1|frame|JavaScriptで配列を並び替えるにはどうすればいい？|JavaScriptで配列を並び替えるコードを書いて
1|frame|「お疲れ様です」を英語に翻訳できますか？|「お疲れ様です」を英語に翻訳して
1|frame|123かける45はいくつ？|123かける45を計算して
1|frame|先週の打ち合わせで資料を用意してくれた取引先の担当者に、丁寧なお礼メールを書いてもらえますか？|先週の打ち合わせで資料を用意してくれた取引先の担当者に、丁寧なお礼メールを書いて
1|frame|gitで直前のコミットメッセージを修正するにはどうすればいい？|gitで直前のコミットメッセージを修正する方法を教えて
1|shorthand|アカウントのメールアドレスを変更したい|垢のメアド変えたい
1|shorthand|iPhoneのアップデートが終わらない|iPhoneのアプデが終わらない
1|shorthand|とりあえず簡単な夕飯のレシピを教えて|とりま簡単な夕飯のレシピ教えて
1|shorthand|パソコンの動作が重いときの対処法は？|PCが重いときの対処法は？
1|wrap|ポイントの有効期限はいつまでですか？|いつもお世話になっております。ポイントの有効期限はいつまでですか？よろしくお願いいたします。
1|wrap|富士山の高さは？|ちょっと気になったんですが、富士山の高さは？
1|wrap|スマートスピーカーで照明を操作する方法は？|初歩的な質問ですみません。スマートスピーカーで照明を操作する方法は？
1|wrap|郵便番号にマッチする正規表現|お疲れ様です！郵便番号にマッチする正規表現をお願いします、助かります
1|wrap|インフルエンザの潜伏期間は？|すみません、教えてください。インフルエンザの潜伏期間は？
0|negation|妊娠中に食べていい魚は？|妊娠中に食べてはいけない魚は？
0|negation|確定申告が必要な人は？|確定申告が不要な人は？
0|negation|認証コードが届いたら、次に何をすればいい？|認証コードが届かない場合は、何をすればいい？
0|antonym|LINEの通知をオンにするには？|LINEの通知をオフにするには？
0|antonym|Googleドライブにファイルをアップロードする方法|Googleドライブからファイルをダウンロードする方法
0|antonym|エアコンの温度を上げて|エアコンの温度を下げて
0|number|注文番号3857の配送状況を教えて|注文番号3875の配送状況を教えて
0|number|年収500万円の手取りはいくら？|年収600万円の手取りはいくら？
0|number|来月、家族4人で沖縄に3泊4日で行くのですが、子ども連れにおすすめの観光スポットとモデルコースを教えてください|来月、家族4人で沖縄に2泊3日で行くのですが、子ども連れにおすすめの観光スポットとモデルコースを教えてください
0|number|3人分のカレーの材料は？|8人分のカレーの材料は？
0|unit|100ドルは何円？|100ユーロは何円？
0|unit|5フィートは何センチ？|5インチは何センチ？
0|unit|大さじ1は何グラム？|小さじ1は何グラム？
0|entity|大阪でおすすめのたこ焼き屋は？|東京でおすすめのたこ焼き屋は？
0|entity|iPhoneでスクリーンショットを撮る方法|Androidでスクリーンショットを撮る方法
0|entity|『吾輩は猫である』の作者は？|『雪国』の作者は？
0|time|飲酒前に飲むといいものは？|飲酒後に飲むといいものは？
0|time|明日の東京の天気は？|昨日の東京の天気は？
0|time|ホテルのチェックイン前に荷物を預けられますか？|ホテルのチェックアウト後に荷物を預けられますか？
0|role|上司から部下へのお礼メールを書いて|部下から上司へのお礼メールを書いて
0|role|iPhoneからAndroidにLINEのトーク履歴を移す方法|AndroidからiPhoneにLINEのトーク履歴を移す方法
0|role|子どもが同級生にいじめられているときの対処法は？|子どもが同級生をいじめているときの対処法は？
0|scope|LINEのトークを1件削除する方法|LINEのトークを全部削除する方法
0|scope|リビングの電気を消して|家中の電気を消して
0|scope|注文した商品のうち1つだけキャンセルできますか？|注文をすべてキャンセルできますか？
0|constraint|ハンバーグのレシピ|卵を使わないハンバーグのレシピ
0|constraint|北海道旅行のおすすめプラン|車なしでの北海道旅行のおすすめプラン
0|constraint|Pythonで文字列を分割する方法|Pythonで複数の区切り文字を使って文字列を分割する方法
0|topic|Suicaのチャージ方法は？|Suicaを紛失したときの手続きは？
0|topic|花粉症の症状は？|花粉症の薬はいつから飲むべき？
0|topic|ふるさと納税のやり方は？|ふるさと納税の上限額はいくら？
"""

DATA["ar"] = """
1|reorder|كيف ألغي اشتراكي في نتفليكس من التطبيق؟|من التطبيق، كيف ألغي اشتراكي في نتفليكس؟
1|reorder|ما أفضل الأماكن التي أزورها في إسطنبول خلال ثلاثة أيام؟|خلال ثلاثة أيام في إسطنبول، ما أفضل الأماكن التي أزورها؟
1|reorder|كيف أقرأ ملف CSV باستخدام بايثون؟|باستخدام بايثون، كيف أقرأ ملف CSV؟
1|reorder|كم دقيقة أطبخ الأرز البسمتي؟|الأرز البسمتي، كم دقيقة أطبخه؟
1|synonym|كيف أغير كلمة المرور؟|كيف أعدّل كلمة السر؟
1|synonym|متى يصل طلبي؟|متى سيتم توصيل طلبي؟
1|synonym|ما علاج الصداع؟|ما الذي يخفف الصداع؟
1|synonym|كيف أحذف حسابي على إنستغرام؟|كيف أزيل حسابي من إنستغرام؟
1|synonym|ما أسرع طريقة لتعلم اللغة الإنجليزية؟|ما أسرع وسيلة لتعلم اللغة الإنجليزية؟
1|typo|أين طلبي؟|اين طلبي
1|typo|كيف أسترجع المبلغ المدفوع؟|كيف استرجع المبلغ المدفوع
1|typo|ما هي أعراض الإنفلونزا؟|ماهي اعراض الانفلونزا
1|typo|كيف أضبط الإضاءة الذكية في غرفة النوم؟|كيف اضبط الاضاءه الذكيه في غرفه النوم
1|typo|كيف أكتب دالة في بايثون تحسب المتوسط؟|كيف اكتب داله في بايثون تحسب المتوسط
1|register|هل يمكنكم التكرم بإخباري كيف أغيّر عنوان الشحن؟|كيف أغير عنوان الشحن؟
1|register|أرجو منكم التكرم بشرح معنى التضخم.|يعني إيش تضخم؟
1|register|أتمنى منكم التكرم بإلغاء حجزي ليوم الجمعة.|ألغِ حجزي ليوم الجمعة.
1|register|لو سمحت، هل يمكنك أن تقترح عليّ وصفة عشاء سريعة؟|عايز وصفة عشا سريعة
1|frame|كيف أحوّل قائمة إلى نص في بايثون؟|حوّل قائمة إلى نص في بايثون
1|frame|هل يمكنك ترجمة «صباح الخير» إلى الفرنسية؟|ترجم «صباح الخير» إلى الفرنسية
1|frame|كم يساوي 18 ضرب 25؟|احسب 18 ضرب 25
1|frame|هل تستطيع كتابة رسالة اعتذار قصيرة لمديري عن تأخري عن اجتماع صباح اليوم بسبب زحمة السير؟|اكتب رسالة اعتذار قصيرة لمديري عن تأخري عن اجتماع صباح اليوم بسبب زحمة السير
1|frame|كيف أنشئ فرعًا جديدًا في git؟|اشرح لي طريقة إنشاء فرع جديد في git
1|shorthand|لو سمحت، كيف أحجز موعدًا عند الطبيب عبر الإنترنت؟|lw sm7t kif a7jez maw3ed 3nd el doctor online
1|shorthand|كم يستغرق التوصيل إلى جدة؟|kam yakhod el tawseel la jeddah?
1|shorthand|كيف أرفع ملفًا على Google Drive؟|كيف ارفع ملف ع الدرايف
1|shorthand|السلام عليكم، متى يفتح فرعكم في دبي؟|سلام، متى يفتح فرعكم ف دبي
1|wrap|كيف أطلب استرداد المبلغ؟|السلام عليكم ورحمة الله، كيف أطلب استرداد المبلغ؟ وشكرًا مقدمًا.
1|wrap|ما أطول نهر في العالم؟|سؤال سريع من باب الفضول: ما أطول نهر في العالم؟
1|wrap|كيف أربط المكيف بتطبيق الجوال؟|آسف على الإزعاج، كيف أربط المكيف بتطبيق الجوال؟
1|wrap|تعبير نمطي للتحقق من رقم جوال سعودي|مرحبًا، أحتاج تعبيرًا نمطيًا للتحقق من رقم جوال سعودي، بارك الله فيك
1|wrap|كم ساعة يحتاج الطفل في عمر خمس سنوات للنوم؟|مساء الخير، سؤال بسيط: كم ساعة يحتاج الطفل في عمر خمس سنوات للنوم؟ شكرًا لكم
0|negation|ما الأطعمة المسموح بها لمرضى السكري؟|ما الأطعمة غير المسموح بها لمرضى السكري؟
0|negation|هل يمكن استبدال المنتج إذا كان مفتوحًا؟|هل يمكن استبدال المنتج إذا لم يكن مفتوحًا؟
0|negation|كيف أختار الأعمدة التي تحتوي على قيم فارغة في pandas؟|كيف أختار الأعمدة التي لا تحتوي على قيم فارغة في pandas؟
0|antonym|كيف أشغّل المكيف من الجوال؟|كيف أطفئ المكيف من الجوال؟
0|antonym|كيف أثبّت محادثة في تيليجرام؟|كيف ألغي تثبيت محادثة في تيليجرام؟
0|antonym|كيف أضيف عضوًا إلى مجموعة واتساب؟|كيف أحذف عضوًا من مجموعة واتساب؟
0|number|أين الطلب رقم 92036؟|أين الطلب رقم 92063؟
0|number|كم القسط الشهري لقرض 200 ألف ريال على 5 سنوات؟|كم القسط الشهري لقرض 200 ألف ريال على 7 سنوات؟
0|number|أعطني وصفة كبسة دجاج لـ4 أشخاص|أعطني وصفة كبسة دجاج لـ10 أشخاص
0|unit|كم تساوي 100 دولار بالريال السعودي؟|كم تساوي 100 يورو بالريال السعودي؟
0|unit|كم كيلوغرامًا في 10 أرطال؟|كم كيلوغرامًا في 10 أوقيات؟
0|unit|اشتريت هاتفًا من متجركم قبل 10 أيام وتوقفت الشاشة عن العمل فجأة، هل يمكنني استبداله أم يشمله الضمان فقط؟|اشتريت هاتفًا من متجركم قبل 10 أشهر وتوقفت الشاشة عن العمل فجأة، هل يمكنني استبداله أم يشمله الضمان فقط؟
0|unit|المسافة 10 أميال، كم تستغرق مشيًا؟|المسافة 10 كيلومترات، كم تستغرق مشيًا؟
0|entity|ما أفضل المطاعم في دبي؟|ما أفضل المطاعم في أبوظبي؟
0|entity|كيف أحدّث نظام iOS؟|كيف أحدّث نظام أندرويد؟
0|entity|من كتب رواية «موسم الهجرة إلى الشمال»؟|من كتب «ثلاثية القاهرة»؟
0|time|ما مواعيد الرحلات من القاهرة إلى عمّان اليوم؟|ما مواعيد الرحلات من القاهرة إلى عمّان غدًا؟
0|time|هل يمكن ممارسة الرياضة بعد الإفطار في رمضان؟|هل يمكن ممارسة الرياضة قبل الإفطار في رمضان؟
0|time|ما نتيجة مباراة الهلال أمس؟|ما نتيجة مباراة الهلال اليوم؟
0|role|كيف أحوّل مبلغًا من حسابي إلى حساب زوجتي؟|كيف أحوّل مبلغًا من حساب زوجتي إلى حسابي؟
0|role|اكتب رسالة من المعلم إلى ولي الأمر بخصوص غياب الطالب|اكتب رسالة من ولي الأمر إلى المعلم بخصوص غياب الطالب
0|role|هل يحق للمؤجر فسخ العقد مع المستأجر قبل نهايته؟|هل يحق للمستأجر فسخ العقد مع المؤجر قبل نهايته؟
0|scope|كيف أحذف صورة من الاستوديو؟|كيف أحذف كل الصور من الاستوديو؟
0|scope|أطفئ ضوء الممر|أطفئ كل الأضواء في البيت
0|scope|كيف ألغي منتجًا واحدًا من الطلب؟|كيف ألغي الطلب بالكامل؟
0|constraint|وصفة كنافة|وصفة كنافة بدون فرن
0|constraint|اقترح فندقًا في القاهرة|اقترح فندقًا في القاهرة قريبًا من المطار
0|constraint|اكتب دالة بايثون تحسب مجموع عناصر قائمة|اكتب دالة بايثون تحسب مجموع عناصر قائمة بدون استخدام sum
0|topic|كيف أغير رقم الجوال المرتبط بحسابي؟|كيف أوثّق حسابي؟
0|topic|ما أعراض نقص فيتامين د؟|ما مصادر فيتامين د الطبيعية؟
0|topic|كيف أحسب زكاة الذهب؟|متى تجب زكاة الذهب؟
"""

DATA["en"] = """
1|reorder|How do I cancel my Spotify subscription on my iPhone?|On my iPhone, how do I cancel my Spotify subscription?
1|reorder|What's the cheapest way to get from Heathrow to central London?|To get from Heathrow to central London, what's the cheapest way?
1|reorder|In Python, how do I check if a key exists in a dictionary?|How do I check if a key exists in a dictionary in Python?
1|reorder|How long should I roast a whole chicken at 200°C?|At 200°C, how long should I roast a whole chicken?
1|synonym|How can I change my password?|How can I update my password?
1|synonym|When will my package arrive?|When will my parcel be delivered?
1|synonym|What helps with a sore throat?|What's good for a sore throat?
1|synonym|How do I delete a remote branch in git?|How do I remove a remote branch in git?
1|synonym|Give me a quick dinner idea|Suggest a fast meal for tonight
1|typo|Where is my order?|wheres my oder
1|typo|How do I get a refund?|how do i get a refnud
1|typo|What is the difference between a Roth IRA and a traditional IRA?|whats the diffrence between a roth ira and a traditonal ira
1|typo|Why is my Python script so slow?|why is my pyhton script so slow
1|typo|Can you recommend a good thermostat schedule for winter?|can you reccomend a good thermostat schedule for winter
1|register|Would you be so kind as to tell me how to update my billing address?|how do i change my billing address
1|register|Could you please explain what a mortgage APR is?|what's mortgage APR
1|register|I would be grateful if you could close my account at your earliest convenience.|Close my account.
1|register|Might I ask what wine pairs well with salmon?|what wine goes with salmon?
1|frame|How do I convert a string to a date in JavaScript?|Convert a string to a date in JavaScript
1|frame|Can you translate 'see you tomorrow' into Spanish?|Translate 'see you tomorrow' into Spanish
1|frame|What is 15% of 340?|Work out 15% of 340 for me
1|frame|Could you write a polite reminder email to a client whose invoice is now two weeks overdue?|Write a polite reminder email to a client whose invoice is now two weeks overdue
1|frame|How do I squash my last three commits in git?|Show me how to squash my last three commits in git
1|shorthand|Please tell me how to fix my Wi-Fi, thanks|pls tell me how to fix my wifi thx
1|shorthand|Do you know why my refund hasn't arrived yet?|do u know y my refund hasnt arrived yet
1|shorthand|By the way, what time does your store close today?|btw what time does ur store close today
1|shorthand|I don't know how to set up two-factor authentication, can you help?|idk how to set up 2FA, can u help
1|wrap|How do I return an item?|Hi there, hope you're having a good day! How do I return an item? Thanks so much.
1|wrap|Who painted the Mona Lisa?|Random question, but who painted the Mona Lisa?
1|wrap|How do I connect my Ring doorbell to Alexa?|Sorry if this is a dumb question, but how do I connect my Ring doorbell to Alexa?
1|wrap|Regex to match a UK postcode|Hey! I need a regex to match a UK postcode, thanks in advance
1|wrap|I ordered a laptop three weeks ago and it still hasn't shipped, can I cancel and get a full refund?|Hi, sorry to bother you. I ordered a laptop three weeks ago and it still hasn't shipped, can I cancel and get a full refund? Thanks.
0|negation|Which houseplants are safe for cats?|Which houseplants are not safe for cats?
0|negation|Can I get a refund if I've already used the product?|Can I get a refund if I haven't used the product?
0|negation|Write a SQL query for customers who placed an order this year|Write a SQL query for customers who have not placed an order this year
0|antonym|How do I enable dark mode in Chrome?|How do I disable dark mode in Chrome?
0|antonym|How do I mute a group chat on WhatsApp?|How do I unmute a group chat on WhatsApp?
0|antonym|How do I encrypt a file with GPG?|How do I decrypt a file with GPG?
0|number|Where is my order #73305?|Where is my order #73350?
0|number|What's the monthly payment on a $300,000 mortgage over 30 years at 6%?|What's the monthly payment on a $300,000 mortgage over 15 years at 6%?
0|number|Set a timer for 5 minutes|Set a timer for 15 minutes
0|unit|How much is 200 USD in GBP?|How much is 200 CAD in GBP?
0|unit|How many ounces are in a pound?|How many grams are in a pound?
0|unit|Is 5 miles a good distance for a beginner runner?|Is 5 km a good distance for a beginner runner?
0|entity|What are the best things to do in Edinburgh?|What are the best things to do in Glasgow?
0|entity|How do I uninstall Microsoft Teams on Windows?|How do I uninstall Microsoft Teams on a Mac?
0|entity|Who wrote Pride and Prejudice?|Who wrote Jane Eyre?
0|time|Should I stretch before lifting weights?|Should I stretch after lifting weights?
0|time|What's the weather in Chicago tomorrow?|What was the weather in Chicago yesterday?
0|time|Can I cancel my hotel booking 24 hours before check-in without paying a fee?|Can I cancel my hotel booking 24 hours after check-in without paying a fee?
0|role|My manager keeps interrupting me in meetings, how should I handle it?|I keep interrupting my manager in meetings, how should I handle it?
0|role|How do I AirDrop photos from my iPhone to my Mac?|How do I AirDrop photos from my Mac to my iPhone?
0|role|What closing costs does the buyer pay in a home sale?|What closing costs does the seller pay in a home sale?
0|scope|How do I unsubscribe from one mailing list in Gmail?|How do I unsubscribe from all mailing lists in Gmail?
0|scope|Turn off the porch light|Turn off all the lights
0|scope|How do I delete one row from a SQL table?|How do I delete all rows from a SQL table?
0|constraint|Banana bread recipe|Banana bread recipe using oat flour
0|constraint|Best flights from New York to Tokyo in March|Best flights from New York to Tokyo in March with no layovers
0|constraint|How do I merge two lists in Python?|How do I merge two lists in Python and remove duplicates?
0|topic|How do I change my shipping address?|How much does shipping cost?
0|topic|What are the symptoms of strep throat?|Is strep throat contagious?
0|topic|How does compound interest work?|What is a good interest rate for a savings account?
"""

# Cross-language pairs: the same request in two languages.  Never a hit for a
# cache -- the stored answer is in the wrong language for the new user.
CROSS = """
en-fr|How do I reset my password?|Comment réinitialiser mon mot de passe ?
en-fr|Where is my order?|Où est ma commande ?
fr-en|Recette de quiche lorraine|Quiche lorraine recipe
en-zh|How do I cancel my subscription?|怎么取消订阅？
zh-en|Python怎么读取Excel文件？|How do I read an Excel file in Python?
fr-nl|Comment annuler ma commande ?|Hoe annuleer ik mijn bestelling?
nl-fr|Wat is de hoofdstad van België?|Quelle est la capitale de la Belgique ?
de-es|Wie lange dauert die Lieferung?|¿Cuánto tarda el envío?
es-de|¿Cómo activo el modo oscuro?|Wie aktiviere ich den Dunkelmodus?
en-de|How do I delete my account?|Wie lösche ich mein Konto?
en-es|What's the weather like in Madrid tomorrow?|¿Qué tiempo hará mañana en Madrid?
en-ja|How do I change my email address?|メールアドレスを変更するには？
ja-en|肉じゃがのレシピを教えて|Give me a recipe for nikujaga
en-ru|How do I undo the last git commit?|Как отменить последний коммит в git?
ru-en|Сколько калорий в яблоке?|How many calories are in an apple?
en-ar|How do I request a refund?|كيف أطلب استرداد المبلغ؟
ar-en|ما هي عاصمة اليابان؟|What is the capital of Japan?
en-it|How do I make tiramisu?|Come si fa il tiramisù?
it-en|Quali documenti servono per fare il passaporto?|What documents do I need to get a passport?
en-pt|How do I track my package?|Como rastreio minha encomenda?
pt-en|O que é inflação?|What is inflation?
en-nl|Turn off the living room lights|Doe de lampen in de woonkamer uit
fr-de|Comment installer Python sur Windows ?|Wie installiere ich Python unter Windows?
de-fr|Was hilft gegen Sonnenbrand?|Qu'est-ce qui soulage un coup de soleil ?
es-pt|¿Cómo cambio mi contraseña?|Como troco minha senha?
pt-es|Quanto é 20% de 150?|¿Cuánto es el 20 % de 150?
it-es|Come posso disdire l'abbonamento?|¿Cómo puedo cancelar la suscripción?
es-it|¿Qué ver en Roma en tres días?|Cosa vedere a Roma in tre giorni?
zh-ja|如何删除账户？|アカウントを削除するには？
ja-zh|東京でおすすめのラーメン屋は？|东京有什么推荐的拉面店？
ru-de|Как приготовить яблочный штрудель?|Wie backe ich einen Apfelstrudel?
de-ru|Was ist der Unterschied zwischen TCP und UDP?|В чём разница между TCP и UDP?
ar-fr|كيف أحجز موعدًا عند الطبيب؟|Comment prendre rendez-vous chez le médecin ?
fr-ar|Quels sont les symptômes du diabète ?|ما هي أعراض مرض السكري؟
pt-it|Como faço para cancelar minha reserva?|Come faccio ad annullare la mia prenotazione?
nl-de|Hoe laat gaat de winkel dicht?|Wann schließt der Laden?
de-nl|Wie kündige ich mein Fitnessstudio?|Hoe zeg ik mijn sportschoolabonnement op?
en-zh|Write a short poem about the moon|写一首关于月亮的短诗
zh-en|血压多少算正常？|What is a normal blood pressure?
en-ja|Set an alarm for 7 am|朝7時にアラームをセットして
ar-en|اكتب دالة بايثون تعكس نصًا|Write a Python function that reverses a string
es-fr|¿Cómo pongo una reclamación?|Comment faire une réclamation ?
it-fr|Qual è la differenza tra virus e batteri?|Quelle est la différence entre un virus et une bactérie ?
nl-en|Hoe maak ik een back-up van mijn iPhone?|How do I back up my iPhone?
"""


def build_rows():
    rows = []
    for lang in LANGS:
        for n, line in enumerate(DATA[lang].strip().splitlines(), 1):
            parts = line.split("|")
            if len(parts) != 4:
                sys.exit(f"{lang} line {n}: expected 4 fields: {line!r}")
            label, kind, a, b = (p.strip() for p in parts)
            rows.append({"a": a, "b": b, "label": label, "lang": lang, "kind": kind})
    for n, line in enumerate(CROSS.strip().splitlines(), 1):
        parts = line.split("|")
        if len(parts) != 3:
            sys.exit(f"cross line {n}: expected 3 fields: {line!r}")
        lang, a, b = (p.strip() for p in parts)
        rows.append({"a": a, "b": b, "label": "0", "lang": lang, "kind": "crosslang"})
    return rows


def write(rows):
    with open(OUT, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=HEADER, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def check():
    errors = []
    with open(OUT, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        if header != HEADER:
            errors.append(f"bad header {header}")
        rows = []
        for n, rec in enumerate(reader, 2):
            if len(rec) != len(HEADER):
                errors.append(f"line {n}: {len(rec)} fields")
                continue
            rows.append(dict(zip(HEADER, rec)))

    seen = set()
    near = set()
    nm_path = os.path.join(HERE, "near-misses.csv")
    if os.path.exists(nm_path):
        with open(nm_path, encoding="utf-8", newline="") as f:
            near = {(r["a"], r["b"]) for r in csv.DictReader(f)}
    for n, r in enumerate(rows, 2):
        if any(not r[k].strip() for k in HEADER):
            errors.append(f"line {n}: empty field")
        if r["a"] == r["b"]:
            errors.append(f"line {n}: a == b")
        key = (r["a"], r["b"])
        if key in seen or (r["b"], r["a"]) in seen:
            errors.append(f"line {n}: duplicate pair {key}")
        seen.add(key)
        if key in near:
            errors.append(f"line {n}: pair also in near-misses.csv")
        lab, lang, kind = r["label"], r["lang"], r["kind"]
        if lab not in ("0", "1"):
            errors.append(f"line {n}: bad label {lab}")
        if "-" in lang:
            x, y = lang.split("-")
            if x == y or x not in LANGS or y not in LANGS:
                errors.append(f"line {n}: bad cross lang {lang}")
            if kind != "crosslang" or lab != "0":
                errors.append(f"line {n}: cross pair must be label 0 crosslang")
        else:
            if lang not in LANGS:
                errors.append(f"line {n}: bad lang {lang}")
            allowed = KINDS_1 if lab == "1" else KINDS_0
            if kind not in allowed:
                errors.append(f"line {n}: kind {kind} not allowed for label {lab}")

    by_lang = collections.defaultdict(collections.Counter)
    by_kind = collections.defaultdict(collections.Counter)
    for r in rows:
        lang = "cross" if "-" in r["lang"] else r["lang"]
        by_lang[lang][r["label"]] += 1
        by_kind[lang][r["kind"]] += 1
    for lang in LANGS:
        tot = sum(by_lang[lang].values())
        if tot < 60:
            errors.append(f"{lang}: only {tot} rows")
        for k in KINDS_1 + KINDS_0:
            if by_kind[lang][k] < 3:
                errors.append(f"{lang}: kind {k} has {by_kind[lang][k]} rows")

    print(f"rows: {len(rows)}")
    print(f"{'lang':6} {'total':>5} {'l=1':>4} {'l=0':>4}  kinds")
    for lang in LANGS + ["cross"]:
        c = by_lang[lang]
        kinds = " ".join(f"{k}={v}" for k, v in sorted(by_kind[lang].items()))
        print(f"{lang:6} {sum(c.values()):5} {c['1']:4} {c['0']:4}  {kinds}")
    tot = collections.Counter(r["kind"] for r in rows)
    print("kinds overall:", " ".join(f"{k}={v}" for k, v in sorted(tot.items())))
    cross_langs = collections.Counter(r["lang"] for r in rows if "-" in r["lang"])
    print("cross pairs:", " ".join(f"{k}={v}" for k, v in sorted(cross_langs.items())))
    if errors:
        print("\nERRORS:")
        for e in errors:
            print(" ", e)
        return 1
    print("OK")
    return 0


def main():
    if "--check" not in sys.argv[1:]:
        write(build_rows())
    sys.exit(check())


if __name__ == "__main__":
    main()
