"""How the store's customers phrase each intent, per locale: the template data.

Each entry is ``(clarity, template)`` or ``(clarity, template, confusions)``:

- ``clarity`` says how sure the reference model is on this phrasing
  (``"clear"`` for the canonical phrasings that keyword rules target,
  ``"plain"`` for ordinary ones, ``"vague"`` for ones that need context);
- ``template`` is a :meth:`str.format` string over the slots ``{title}``,
  ``{order}`` (a 6-digit order number), ``{vol}``, ``{date}``, ``{days}`` and
  ``{code}`` (a promo code);
- ``confusions`` are the intents the model picks when it is wrong on this
  phrasing (default: :data:`DEFAULT_CONFUSIONS` of the intent).

Invariant the shipped rules rely on: only phrasings *without* a non-safety
rule's pattern (other than the deliberately broad ``my order``) may list a
safety intent (``return_request``, ``escalation``) among their confusions, and
safety-intent phrasings contain no non-safety pattern except ``my order``.
Within a list, earlier phrasings are more frequent (see
:func:`rulelife.simulate.catalog.rank_weights`).
"""

from __future__ import annotations

C, P, V = "clear", "plain", "vague"

# Where the model goes when it is wrong: the neighbouring intents a person
# would also hesitate between.
DEFAULT_CONFUSIONS: dict[str, tuple[str, ...]] = {
    "order_tracking": ("faq", "product_question"),
    "return_request": ("order_tracking", "faq"),
    "escalation": ("chitchat", "order_tracking"),
    "recommendation": ("product_question", "chitchat"),
    "product_question": ("recommendation", "faq"),
    "faq": ("product_question", "order_tracking"),
    "promotion": ("faq", "product_question"),
    "chitchat": ("faq", "recommendation"),
}

_LOST = ("return_request", "escalation")  # a late parcel reads like a complaint
_UPSET = ("escalation", "faq")

EN_US = {
    "order_tracking": [
        (C, "Where is my order #{order}?"),
        (C, "where is my order"),
        (C, "Can you track my order #{order}"),
        (C, "What's the order status for #{order}?"),
        (C, "Where's my order? I ordered {title} vol {vol} on {date}."),
        (C, "I need the tracking number for order #{order}"),
        (C, "order status"),
        (C, "Has my order shipped yet?"),
        (C, "status of my order #{order} please"),
        (P, "Did my order #{order} ship?"),
        (P, "When will {title} volume {vol} arrive? I ordered it on {date}"),
        (P, "has order #{order} been shipped?"),
        (P, "check my order {order}"),
        (P, "My package hasn't arrived yet, order #{order}", _LOST),
        (V, "I ordered {title} {days} days ago and nothing yet", _LOST),
        (V, "still waiting for my stuff", _LOST),
        (V, "it's been {days} days...", _LOST),
    ],
    "return_request": [
        (C, "I want to return my order #{order}"),
        (C, "How do I get a refund for order #{order}?"),
        (C, "I want to return {title} vol {vol}, it arrived damaged"),
        (C, "please send me a return label for #{order}"),
        (C, "Wrong volume arrived. Can I send it back?"),
        (C, "I want my money back for {title}"),
        (P, "Received the wrong book in my order #{order}"),
        (P, "{title} vol {vol} has missing pages, can I exchange it?"),
        (P, "I'd like to return this"),
        (P, "the cover of {title} is torn, I don't want it"),
        (V, "this isn't what I ordered"),
    ],
    "escalation": [
        (C, "I want to talk to a human"),
        (C, "let me speak to a manager NOW"),
        (C, "cancel my order and talk to a human"),
        (C, "Can I talk to an agent please"),
        (C, "is there a real person I can talk to?"),
        (C, "I want to file a complaint about order #{order}"),
        (C, "speak to a human"),
        (P, "Cancel my order #{order} right now, nobody answers my emails"),
        (P, "cancel my order and get me someone who can actually help"),
        (P, "I've been charged twice, fix this"),
        (V, "this is the third time I'm asking, {days} days and no answer"),
        (V, "ugh, useless bot"),
    ],
    "recommendation": [
        (C, "Can you recommend a manga like {title}?"),
        (C, "recommend me something similar to {title}"),
        (C, "What should I read after {title}?"),
        (C, "something like {title} but darker"),
        (P, "any good horror manga?"),
        (P, "looking for a gift for someone who loves {title}"),
        (P, "best completed series under 20 volumes?"),
        (V, "bored, need a new series"),
    ],
    "product_question": [
        (C, "Is {title} vol {vol} in stock?"),
        (C, "when is volume {vol} of {title} out"),
        (C, "What's the release date for {title} volume {vol}?"),
        (C, "is {title} back in stock"),
        (C, "When does volume {vol} come out?"),
        (P, "Is {title} available in hardcover?"),
        (P, "how many pages is {title} vol {vol}"),
        (P, "Is the {title} box set in English?"),
        (P, "is this the uncensored edition of {title}"),
        (V, "{title} vol {vol}?", ("order_tracking", "recommendation")),
    ],
    "faq": [
        (C, "What's the shipping cost to Canada?"),
        (C, "What is your return policy?"),
        (C, "how much is shipping"),
        (C, "Do you ship internationally?"),
        (C, "how long do I have to return a book?"),
        (C, "returns policy for box sets?"),
        (P, "Do you accept PayPal?"),
        (P, "How do I reset my password?"),
        (P, "what are your support hours"),
        (P, "Can I change the delivery address after ordering?"),
    ],
    "promotion": [
        (C, "Do you have a coupon for first orders?"),
        (C, "is {title} on sale?"),
        (C, "promo code {code} isn't working"),
        (C, "any deals this weekend?"),
        (C, "black friday manga discounts?"),
        (C, "where do I enter a discount code"),
        (P, "are there bundle discounts on full series?"),
        (P, "student discount?"),
    ],
    "chitchat": [
        (C, "hello"),
        (C, "thanks!"),
        (C, "hi there!"),
        (C, "thank you so much"),
        (C, "good morning :)"),
        (C, "how are you?"),
        (P, "you're a bot right?"),
        (P, "lol"),
        (P, "I love {title}!!", ("recommendation", "product_question")),
        (P, "what's your name"),
        (V, "this is so annoying", _UPSET),
    ],
}

JA_JP = {
    "order_tracking": [
        (C, "注文した商品はどこですか？注文番号{order}"),
        (C, "配送状況を教えてください"),
        (C, "{title}{vol}巻はいつ届きますか？"),
        (C, "追跡番号を知りたいです。注文番号は{order}です"),
        (C, "注文番号{order}の配送状況は？"),
        (P, "発送はいつになりますか"),
        (P, "{date}に注文した本が届かない"),
        (V, "まだ荷物が届いていません", _LOST),
    ],
    "return_request": [
        (C, "{title}の{vol}巻を返品したいです"),
        (C, "返品をお願いします。注文番号{order}"),
        (C, "落丁があったので返金してほしい"),
        (C, "返品手続きの方法を教えて"),
        (P, "間違った商品が届きました"),
        (P, "破損していたので交換できますか"),
    ],
    "escalation": [
        (C, "オペレーターにつないでください"),
        (C, "担当者と話したい"),
        (C, "人と話したいです"),
        (P, "対応がひどすぎる"),
        (V, "何度も問い合わせているのに返事がない"),
    ],
    "recommendation": [
        (C, "おすすめの漫画を教えてください"),
        (C, "{title}に似ている作品はありますか"),
        (C, "おすすめを教えて"),
        (C, "最近おすすめの本は？"),
        (P, "{title}が好きな人向けの作品は？"),
    ],
    "product_question": [
        (C, "{title}の{vol}巻は在庫はありますか"),
        (C, "{title}の最新刊の発売日はいつですか"),
        (C, "{title}在庫ありますか"),
        (P, "{title}の特装版はありますか"),
        (P, "電子書籍版はありますか"),
    ],
    "faq": [
        (C, "送料はいくらですか"),
        (C, "支払い方法を教えてください"),
        (C, "返品ポリシーについて知りたい"),
        (P, "海外発送はしていますか"),
        (P, "会員登録の方法は？"),
    ],
    "promotion": [
        (C, "クーポンはありますか"),
        (C, "今セールしてますか"),
        (C, "{title}のキャンペーンはいつまで？"),
        (P, "まとめ買い割引はありますか"),
    ],
    "chitchat": [
        (C, "こんにちは"),
        (C, "ありがとう！"),
        (C, "おはようございます"),
        (P, "あなたはロボットですか"),
        (P, "{title}が大好き！", ("recommendation", "product_question")),
    ],
}

ES_ES = {
    "order_tracking": [
        (C, "¿Dónde está mi pedido #{order}?"),
        (C, "donde esta mi pedido"),
        (C, "Seguimiento del pedido #{order}, por favor"),
        (C, "quiero el número de seguimiento del pedido {order}"),
        (P, "¿Ya enviaron mi pedido #{order}?"),
        (P, "¿Cuándo llega {title} tomo {vol}?"),
        (V, "Mi paquete no ha llegado todavía", _LOST),
    ],
    "return_request": [
        (C, "Quiero devolver {title} tomo {vol}"),
        (C, "¿Cómo puedo devolver mi pedido #{order}?"),
        (C, "Quiero un reembolso del pedido #{order}"),
        (C, "quiero devolver el libro, llegó dañado"),
        (P, "Me llegó el tomo equivocado"),
    ],
    "escalation": [
        (C, "Quiero hablar con una persona"),
        (C, "¿Puedo hablar con un agente?"),
        (C, "Quiero poner una queja"),
        (C, "Necesito hablar con un humano ya"),
        (V, "Es la tercera vez que escribo y nadie responde"),
    ],
    "recommendation": [
        (C, "¿Me recomiendas algún manga parecido a {title}?"),
        (C, "Recomiéndame algo de fantasía"),
        (C, "Busco algo parecido a {title}"),
        (P, "¿Qué leo después de {title}?"),
    ],
    "product_question": [
        (C, "¿Hay stock de {title} tomo {vol}?"),
        (C, "¿Tienen en stock {title}?"),
        (C, "¿Cuál es la fecha de salida del tomo {vol} de {title}?"),
        (P, "¿{title} está en castellano?"),
    ],
    "faq": [
        (C, "¿Cuánto cuesta el envío a Canarias?"),
        (C, "¿Cuáles son los gastos de envío?"),
        (C, "¿Qué métodos de pago aceptan?"),
        (C, "¿Cuál es la política de devoluciones?"),
        (P, "¿Hacen envíos a Portugal?"),
    ],
    "promotion": [
        (C, "¿Tenéis algún código de descuento?"),
        (C, "¿Hay ofertas esta semana?"),
        (C, "¿Cuándo empiezan las rebajas?"),
        (C, "no me funciona el cupón {code}"),
        (P, "¿Hay descuento para estudiantes?"),
    ],
    "chitchat": [
        (C, "Hola"),
        (C, "¡Muchas gracias!"),
        (C, "Buenos días"),
        (P, "¿Eres un robot?"),
        (P, "jajaja"),
    ],
}

BASE = {"en-US": EN_US, "ja-JP": JA_JP, "es-ES": ES_ES}

# Phrasings that drift scenarios switch on (see rulelife.simulate.scenarios),
# by phrasing set, then locale, then intent.
SCENARIO_PHRASINGS = {
    # The app's new "Package status" button: users now type its label, which
    # none of the order-tracking rules' patterns contain.
    "package_status": {
        "en-US": {
            "order_tracking": [
                (P, "package status"),
                (P, "Package status for #{order}"),
                (P, "delivery status"),
                (P, "check delivery status #{order}"),
                (P, "Delivery status: {title} vol {vol}"),
            ],
        },
        "es-ES": {
            "order_tracking": [
                (P, "estado del paquete"),
                (P, "Estado del envío #{order}"),
            ],
        },
        "ja-JP": {
            "order_tracking": [
                (P, "荷物のステータス"),
                (P, "配達ステータスを確認したい"),
            ],
        },
    },
    # "Order & Return Week": the banner says "return order status", so return
    # requests now carry order-tracking vocabulary.
    "order_return_campaign": {
        "en-US": {
            "return_request": [
                (P, "return order status #{order}"),
                (P, "What's my return order status?"),
                (P, "Order & Return Week: order status of my return #{order}"),
                (P, "where is my order return?"),
                (P, "how do I start an order return for #{order}"),
            ],
        },
        "es-ES": {
            "return_request": [
                (P, "Seguimiento del pedido de devolución #{order}"),
                (P, "estado de la devolución del pedido {order}"),
            ],
        },
    },
}
