"""Labelled text for the language benchmark, written for this project (no external corpus).

- ``SHORT``: clause-sized Latin-script segments (5-11 words) per language, the size the checker sends to a
  detector most often.
- ``SENTENCES``: sentence-sized Latin-script segments (15-35 words).
- ``REASONING``: chain-of-thought sentences per language (en, fr, de, es, zh, ja, ko, ru) and ``MATH`` /
  ``CODE`` blocks, from which ``build_cot`` assembles deterministic ~6,000-character mixed chains of thought
  whose parts carry their language, so that the true share of target words is known.
"""

from __future__ import annotations

import random

SHORT: dict[str, list[str]] = {
    "en": [
        "We still need to check the second case",
        "So the total number of apples is twelve",
        "Let me reconsider the boundary condition here",
        "This means the function is strictly increasing",
        "Wait, I made a mistake in the previous step",
        "The answer should be a positive integer",
        "Now we substitute this value back into the equation",
        "Both sides are divisible by three",
        "I think the pattern repeats every four terms",
        "Therefore the probability is one half",
        "Hmm, that does not look right",
        "Let us count the remaining possibilities carefully",
    ],
    "fr": [
        "Il faut encore vérifier le deuxième cas",
        "Donc le nombre total de pommes est douze",
        "Reprenons la condition aux limites ici",
        "Cela signifie que la fonction est strictement croissante",
        "Attends, je me suis trompé à l'étape précédente",
        "La réponse doit être un entier positif",
        "Maintenant on remplace cette valeur dans l'équation",
        "Les deux côtés sont divisibles par trois",
        "Je pense que le motif se répète tous les quatre termes",
        "Par conséquent la probabilité vaut un demi",
        "Hmm, cela ne semble pas correct",
        "Comptons soigneusement les possibilités restantes",
    ],
    "de": [
        "Wir müssen noch den zweiten Fall prüfen",
        "Also ist die Gesamtzahl der Äpfel zwölf",
        "Betrachten wir hier noch einmal die Randbedingung",
        "Das bedeutet, dass die Funktion streng monoton wächst",
        "Moment, ich habe im vorherigen Schritt einen Fehler gemacht",
        "Die Antwort sollte eine positive ganze Zahl sein",
        "Jetzt setzen wir diesen Wert wieder in die Gleichung ein",
        "Beide Seiten sind durch drei teilbar",
        "Ich glaube, das Muster wiederholt sich alle vier Glieder",
        "Daher ist die Wahrscheinlichkeit einhalb",
        "Hmm, das sieht nicht richtig aus",
        "Zählen wir die übrigen Möglichkeiten sorgfältig",
    ],
    "es": [
        "Todavía tenemos que comprobar el segundo caso",
        "Así que el número total de manzanas es doce",
        "Volvamos a considerar la condición de frontera aquí",
        "Esto significa que la función es estrictamente creciente",
        "Espera, cometí un error en el paso anterior",
        "La respuesta debería ser un número entero positivo",
        "Ahora sustituimos este valor en la ecuación",
        "Ambos lados son divisibles entre tres",
        "Creo que el patrón se repite cada cuatro términos",
        "Por lo tanto la probabilidad es un medio",
        "Hmm, eso no parece correcto",
        "Contemos con cuidado las posibilidades restantes",
    ],
    "it": [
        "Dobbiamo ancora controllare il secondo caso",
        "Quindi il numero totale di mele è dodici",
        "Riconsideriamo qui la condizione al contorno",
        "Questo significa che la funzione è strettamente crescente",
        "Aspetta, ho fatto un errore nel passaggio precedente",
        "La risposta dovrebbe essere un numero intero positivo",
        "Ora sostituiamo questo valore nell'equazione",
        "Entrambi i lati sono divisibili per tre",
        "Penso che lo schema si ripeta ogni quattro termini",
        "Perciò la probabilità è un mezzo",
        "Mmm, questo non sembra giusto",
        "Contiamo con attenzione le possibilità rimanenti",
    ],
    "pt": [
        "Ainda precisamos verificar o segundo caso",
        "Então o número total de maçãs é doze",
        "Vamos reconsiderar a condição de contorno aqui",
        "Isso significa que a função é estritamente crescente",
        "Espera, cometi um erro no passo anterior",
        "A resposta deve ser um número inteiro positivo",
        "Agora substituímos esse valor de volta na equação",
        "Os dois lados são divisíveis por três",
        "Acho que o padrão se repete a cada quatro termos",
        "Portanto a probabilidade é um meio",
        "Hmm, isso não parece certo",
        "Vamos contar com cuidado as possibilidades que restam",
    ],
    "nl": [
        "We moeten nog het tweede geval controleren",
        "Dus het totale aantal appels is twaalf",
        "Laten we hier de randvoorwaarde opnieuw bekijken",
        "Dit betekent dat de functie strikt stijgend is",
        "Wacht, ik heb in de vorige stap een fout gemaakt",
        "Het antwoord moet een positief geheel getal zijn",
        "Nu vullen we deze waarde weer in de vergelijking in",
        "Beide kanten zijn deelbaar door drie",
        "Ik denk dat het patroon zich elke vier termen herhaalt",
        "Daarom is de kans een half",
        "Hmm, dat ziet er niet goed uit",
        "Laten we de overige mogelijkheden zorgvuldig tellen",
    ],
}

SENTENCES: dict[str, list[str]] = {
    "en": [
        "To find the number of ways to arrange the books, we first fix the position of the largest one and then "
        "count the arrangements of the remaining books on both sides.",
        "Since the sequence is defined recursively, it is easier to compute the first few terms by hand and look "
        "for a pattern before trying to prove anything in general.",
        "The triangle has one right angle, so we can use the theorem of Pythagoras to get the length of the "
        "missing side and then compute its area.",
        "If we assume that the train leaves the station at noon and travels at a constant speed, it reaches the "
        "next town a little after three in the afternoon.",
        "I am not completely sure about this step, so let me verify it with a smaller example where every case "
        "can be listed explicitly.",
        "The expected value is the sum over all outcomes of the outcome times its probability, which gives us a "
        "simple expression that we can evaluate directly.",
    ],
    "fr": [
        "Pour trouver le nombre de façons de ranger les livres, on fixe d'abord la position du plus grand puis "
        "on compte les arrangements des livres restants de chaque côté.",
        "Comme la suite est définie par récurrence, il est plus simple de calculer les premiers termes à la main "
        "et de chercher une régularité avant de démontrer quoi que ce soit.",
        "Le triangle possède un angle droit, donc on peut utiliser le théorème de Pythagore pour obtenir la "
        "longueur du côté manquant puis calculer son aire.",
        "Si on suppose que le train quitte la gare à midi et roule à vitesse constante, il arrive dans la ville "
        "suivante un peu après trois heures de l'après-midi.",
        "Je ne suis pas tout à fait sûr de cette étape, alors vérifions-la sur un exemple plus petit où tous les "
        "cas peuvent être énumérés.",
        "L'espérance est la somme sur toutes les issues de l'issue multipliée par sa probabilité, ce qui donne "
        "une expression simple que l'on peut évaluer directement.",
    ],
    "de": [
        "Um die Anzahl der Möglichkeiten zu finden, die Bücher anzuordnen, legen wir zuerst die Position des "
        "größten fest und zählen dann die Anordnungen der übrigen Bücher auf beiden Seiten.",
        "Da die Folge rekursiv definiert ist, ist es einfacher, die ersten Glieder von Hand zu berechnen und nach "
        "einem Muster zu suchen, bevor wir etwas allgemein beweisen.",
        "Das Dreieck hat einen rechten Winkel, also können wir den Satz des Pythagoras verwenden, um die Länge "
        "der fehlenden Seite zu bestimmen und dann die Fläche zu berechnen.",
        "Wenn wir annehmen, dass der Zug um zwölf Uhr den Bahnhof verlässt und mit konstanter Geschwindigkeit "
        "fährt, erreicht er die nächste Stadt kurz nach drei Uhr nachmittags.",
        "Ich bin mir bei diesem Schritt nicht ganz sicher, also überprüfen wir ihn an einem kleineren Beispiel, "
        "bei dem sich alle Fälle aufzählen lassen.",
        "Der Erwartungswert ist die Summe über alle Ergebnisse, jeweils mit ihrer Wahrscheinlichkeit "
        "multipliziert, was einen einfachen Ausdruck ergibt, den wir direkt auswerten können.",
    ],
    "es": [
        "Para encontrar el número de formas de ordenar los libros, primero fijamos la posición del más grande y "
        "luego contamos las ordenaciones de los libros restantes a cada lado.",
        "Como la sucesión está definida de forma recursiva, es más fácil calcular a mano los primeros términos y "
        "buscar un patrón antes de intentar demostrar algo en general.",
        "El triángulo tiene un ángulo recto, así que podemos usar el teorema de Pitágoras para obtener la "
        "longitud del lado que falta y después calcular su área.",
        "Si suponemos que el tren sale de la estación al mediodía y viaja a velocidad constante, llega al "
        "siguiente pueblo un poco después de las tres de la tarde.",
        "No estoy del todo seguro de este paso, así que vamos a comprobarlo con un ejemplo más pequeño donde se "
        "puedan enumerar todos los casos.",
        "La esperanza es la suma sobre todos los resultados de cada resultado por su probabilidad, lo que nos da "
        "una expresión sencilla que podemos evaluar directamente.",
    ],
    "it": [
        "Per trovare il numero di modi di disporre i libri, fissiamo prima la posizione del più grande e poi "
        "contiamo le disposizioni dei libri rimanenti su entrambi i lati.",
        "Poiché la successione è definita per ricorrenza, è più semplice calcolare a mano i primi termini e "
        "cercare una regolarità prima di dimostrare qualcosa in generale.",
        "Il triangolo ha un angolo retto, quindi possiamo usare il teorema di Pitagora per ottenere la lunghezza "
        "del lato mancante e poi calcolarne l'area.",
        "Se supponiamo che il treno parta dalla stazione a mezzogiorno e viaggi a velocità costante, arriva nella "
        "città successiva poco dopo le tre del pomeriggio.",
        "Non sono del tutto sicuro di questo passaggio, quindi verifichiamolo con un esempio più piccolo in cui "
        "si possono elencare tutti i casi.",
        "Il valore atteso è la somma su tutti gli esiti dell'esito moltiplicato per la sua probabilità, il che ci "
        "dà un'espressione semplice da valutare direttamente.",
    ],
    "pt": [
        "Para encontrar o número de maneiras de organizar os livros, primeiro fixamos a posição do maior e depois "
        "contamos as arrumações dos livros restantes de cada lado.",
        "Como a sequência é definida de forma recursiva, é mais fácil calcular os primeiros termos à mão e "
        "procurar um padrão antes de tentar provar qualquer coisa em geral.",
        "O triângulo tem um ângulo reto, então podemos usar o teorema de Pitágoras para obter o comprimento do "
        "lado que falta e depois calcular a sua área.",
        "Se supusermos que o trem sai da estação ao meio-dia e viaja a uma velocidade constante, ele chega à "
        "cidade seguinte um pouco depois das três da tarde.",
        "Não tenho certeza absoluta sobre este passo, então vamos verificá-lo com um exemplo menor em que todos "
        "os casos podem ser listados.",
        "O valor esperado é a soma, sobre todos os resultados, de cada resultado vezes a sua probabilidade, o que "
        "nos dá uma expressão simples que podemos avaliar diretamente.",
    ],
    "nl": [
        "Om het aantal manieren te vinden om de boeken te ordenen, leggen we eerst de plaats van het grootste "
        "boek vast en tellen we daarna de ordeningen van de overige boeken aan beide kanten.",
        "Omdat de rij recursief is gedefinieerd, is het makkelijker om de eerste termen met de hand uit te "
        "rekenen en naar een patroon te zoeken voordat we iets algemeens bewijzen.",
        "De driehoek heeft een rechte hoek, dus kunnen we de stelling van Pythagoras gebruiken om de lengte van "
        "de ontbrekende zijde te vinden en daarna de oppervlakte te berekenen.",
        "Als we aannemen dat de trein om twaalf uur van het station vertrekt en met een constante snelheid rijdt, "
        "komt hij iets na drie uur 's middags in de volgende stad aan.",
        "Ik ben niet helemaal zeker van deze stap, dus laten we hem controleren met een kleiner voorbeeld waarin "
        "alle gevallen kunnen worden opgesomd.",
        "De verwachtingswaarde is de som over alle uitkomsten van de uitkomst maal haar kans, wat een eenvoudige "
        "uitdrukking oplevert die we direct kunnen uitrekenen.",
    ],
}

REASONING: dict[str, list[str]] = {
    "en": SENTENCES["en"] + [sentence + "." for sentence in SHORT["en"]],
    "fr": SENTENCES["fr"] + [sentence + "." for sentence in SHORT["fr"]],
    "de": SENTENCES["de"] + [sentence + "." for sentence in SHORT["de"]],
    "es": SENTENCES["es"] + [sentence + "." for sentence in SHORT["es"]],
    "zh": [
        "我们先固定最大的那本书的位置，然后分别计算两边剩下的书有多少种排列方法。",
        "因为这个数列是递推定义的，所以先手算前几项，找出规律会比较容易。",
        "这个三角形有一个直角，所以可以用勾股定理求出缺少的那条边，再算出面积。",
        "等一下，我在上一步好像算错了，需要重新检查一遍。",
        "所以答案应该是一个正整数。",
        "两边都能被三整除，因此这个式子成立。",
    ],
    "ja": [
        "まず一番大きい本の位置を固定して、残りの本の並べ方を両側で数えます。",
        "この数列は漸化式で定義されているので、最初の数項を手で計算して規則を探すほうが簡単です。",
        "ちょっと待って、前のステップで計算を間違えたかもしれません。",
        "したがって、答えは正の整数になるはずです。",
    ],
    "ko": [
        "먼저 가장 큰 책의 위치를 고정한 다음 양쪽에 남은 책을 배열하는 방법의 수를 셉니다.",
        "잠깐, 이전 단계에서 계산을 잘못한 것 같습니다.",
        "따라서 답은 양의 정수여야 합니다.",
    ],
    "ru": [
        "Сначала зафиксируем положение самой большой книги, а затем посчитаем расстановки остальных книг.",
        "Подождите, кажется, я ошибся на предыдущем шаге, нужно всё перепроверить.",
        "Следовательно, ответ должен быть целым положительным числом.",
    ],
}

MATH: list[str] = [
    "$$\\sum_{k=1}^{n} k = \\frac{n(n+1)}{2}$$",
    "We get $x^2 - 5x + 6 = 0$, hence $(x-2)(x-3) = 0$.",
    "\\[ \\int_0^1 x^2 \\, dx = \\frac{1}{3} \\]",
    "\\begin{align} a_1 &= 1 \\\\ a_{n+1} &= 2a_n + 1 \\end{align}",
    "So $P(A \\cap B) = P(A) P(B) = \\tfrac{1}{6}$ and \\(E[X] = 3.5\\).",
    "3 * 4 = 12, 12 + 7 = 19, 19 - 2 = 17",
]

CODE: list[str] = [
    "```python\ndef count(n):\n    return sum(1 for k in range(1, n + 1) if n % k == 0)\n\nprint(count(36))\n```",
    "Using `math.comb(10, 3)` gives 120.",
    "```\nfor i in range(10):\n    total += i * i\n```",
]


def build_cot(seed: int, main: str, foreign: tuple[str, ...], size: int = 6_000) -> list[tuple[str, str]]:
    """A deterministic chain of thought of about ``size`` characters as labelled parts: mostly ``main``, about a
    fifth ``foreign`` sentences, math and code blocks (labelled ``en``: their prose is English) mixed in."""
    rng = random.Random(seed)
    parts: list[tuple[str, str]] = []
    length = 0
    while length < size:
        roll = rng.random()
        if roll < 0.12:
            part = ("en", rng.choice(MATH))
        elif roll < 0.17:
            part = ("en", rng.choice(CODE))
        elif foreign and roll < 0.37:
            language = rng.choice(foreign)
            part = (language, rng.choice(REASONING[language]))
        else:
            part = (main, rng.choice(REASONING[main]))
        parts.append(part)
        length += len(part[1]) + 1
    return parts


def cot_text(parts: list[tuple[str, str]]) -> str:
    return "<think>\n" + "\n".join(text for _, text in parts) + "\n</think>\n<answer>\n42\n</answer>"
