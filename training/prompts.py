"""Chat-style prompts written for training: what people ask an assistant or a support bot.
The generators in `generate.py` perturb them into paraphrases and near-misses."""

CHAT = """
How do I reset my password?
How do I cancel my subscription?
How can I change my seat on a flight?
Where is my order #4821?
How do I enable two-factor authentication?
How do I read a file in Python?
What is the capital of France?
How do I pin a message in Slack?
Can I pay by card at the airport?
Does the seller pay the buyer's fees?
How long does shipping to Canada take?
Do you ship internationally?
How do I delete my account?
How can I update my billing address?
What is the refund policy for damaged items?
How do I turn on dark mode in Chrome?
Why is my internet connection so slow?
How many calories are in a banana?
What's the weather like in Paris today?
How do I convert 5 kg to pounds?
How do I export my contacts from my iPhone?
How can I transfer money from my checking account to my savings account?
What time does the store open on Sunday?
How do I install Python on Windows?
How do I merge two branches in git?
Can I bring a laptop in my carry-on bag?
How do I upgrade my plan to premium?
How do I unsubscribe from the newsletter?
Is it safe to eat raw eggs?
How do I remove a user from a shared folder?
What is the difference between a Roth IRA and a traditional IRA?
How do I increase the font size in Word?
How can I download my invoices?
Why was my card declined?
How do I add a new payment method?
How do I return an item I bought online?
Can I change my delivery address after the order is shipped?
How do I lock my screen on a Mac?
How do I connect my phone to the car via Bluetooth?
How do I sort a list in descending order in Python?
What is the best way to learn JavaScript?
How do I mute notifications on WhatsApp?
How do I open a savings account?
Where can I find my tracking number?
What are the opening hours of the museum on Monday?
How do I book a table for 4 people tonight?
Is the pharmacy open tomorrow morning?
How can I get a refund for my train ticket?
How much does it cost to send a package to Germany?
How do I withdraw money from my account abroad?
How do I start a new project in Android Studio?
How do I stop the dishwasher in the middle of a cycle?
What is the maximum file size I can upload?
Can I use my phone while it is charging?
How do I share my screen on Zoom?
Why does my laptop battery drain so fast?
How do I check my account balance?
How can I report a lost card?
How do I freeze my credit card?
When will I receive my new card?
How do I change the language of the app to English?
How do I archive old emails in Gmail?
What is the fastest way to get to the airport from downtown?
How long is the flight from London to New York?
Can I get a window seat for free?
How do I cook rice in a pressure cooker?
How long should I boil an egg?
What temperature should I bake chicken at in Celsius?
How many hours of sleep does an adult need?
How do I apply for a passport?
How do I renew my driver's license online?
What documents do I need to open a bank account?
Can I cancel my order before it ships?
How do I set an alarm for 7 am?
Play some jazz music in the living room
Turn off the lights in the kitchen
What's on my calendar for next Monday?
Remind me to call mom at 6 pm
How do I encrypt a folder on Windows?
How do I compress a video without losing quality?
How do I decline a meeting invite in Outlook?
How do I follow someone on Instagram?
How can I increase my credit limit?
Why is my package still not delivered?
Which countries can I travel to without a visa?
How do I split a bill with friends in the app?
How do I print only one page of a PDF?
How do I make my profile private?
How do I convert a string to an integer in Java?
What is the population of Tokyo?
Who wrote Pride and Prejudice?
How do I replace the battery of my car key?
How often should I water a cactus?
Can dogs eat chocolate?
How do I get a copy of my bank statement for last month?
How do I schedule a post on LinkedIn?
How do I recover deleted photos from my phone?
Is there a fee for withdrawing cash with my debit card?
How do I change my username?
How do I add a second driver to my car rental?
How do I join a team in Microsoft Teams?
What is the minimum age to open an account?
How do I download an app on my Samsung Galaxy?
How can I speak to a human agent?
How do I pay my bill online?
Can I top up my account with Apple Pay?
How long does a bank transfer to Spain take?
How do I set up a direct debit?
How do I upload a file to Google Drive?
How do I connect to a VPN on Linux?
What are the symptoms of the flu?
How do I make an appointment with a doctor?
How do I write a cover letter for a job application?
How do I calculate the area of a circle?
What is the boiling point of water in Fahrenheit?
How do I unblock a contact on my phone?
Comment réinitialiser mon mot de passe ?
Comment annuler mon abonnement ?
Où est ma commande 4821 ?
Livrez-vous à l'étranger ?
Comment supprimer mon compte ?
Comment changer ma carte de paiement ?
Quels sont les horaires d'ouverture le dimanche ?
Comment activer le mode sombre ?
Puis-je payer par carte à l'aéroport ?
Combien coûte l'envoi d'un colis en Allemagne ?
Comment obtenir un remboursement pour mon billet de train ?
Pourquoi ma carte a-t-elle été refusée ?
Hoe reset ik mijn wachtwoord?
Hoe zeg ik mijn abonnement op?
Waar is mijn bestelling 4821?
Verzenden jullie naar het buitenland?
Hoe verwijder ik mijn account?
Hoe wijzig ik mijn betaalkaart?
Wat zijn de openingstijden op zondag?
Hoe zet ik de donkere modus aan?
Kan ik met een kaart betalen op het vliegveld?
Hoeveel kost het om een pakket naar Duitsland te sturen?
Waarom is mijn kaart geweigerd?
Hoe krijg ik mijn geld terug voor mijn treinkaartje?
""".strip().splitlines()
