"""Generate the labelled prompt set: export/data/prompts.jsonl (committed).

    python -m pointsman.export.prompt_set            # rewrite the file
    python -m pointsman.export.prompt_set --check    # exit 1 if the committed file is stale

Hand-written prompts plus templates x slot fillers x paraphrase patterns, drawn with a
fixed seed, so the file is reproducible byte for byte. Every record names its template
(`group`) and its split. Whole templates are held out (TUNE_TEMPLATES, TEST_TEMPLATES), so
no template has prompts on two sides; hand-written prompts are split by a hash of their
text. A prompt whose normalised text, or MiniLM embedding (cosine >= NEAR_DUPLICATE_COSINE),
matches one on an earlier split (train, then tune, then test) is dropped (export/dedup.py).
Labelling policy: coding is writing, reading, running or debugging code and software tools;
creative is any creative form, whatever its topic (a haiku about recursion is creative); qa
is a factual or explanatory question with one accepted answer; reasoning is arithmetic,
logic, planning, decisions and multi-step problems.
"""

# ruff: noqa: E501 - prompts read best unwrapped
from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import random
import sys
from pathlib import Path

OUT = Path(__file__).resolve().with_name("data") / "prompts.jsonl"
SEED = 20240605

# ---------------------------------------------------------------- hand-written prompts
CODING = [
    'import os',
    'print(len(sys.argv))',
    'x += 1',
    'ls -la',
    'SELECT 1;',
    'npm run build',
    'git status',
    'lambda x: x * 2',
    'for i in range(10): print(i)',
    'pip install requests',
    'chmod +x run.sh',
    '#include <vector>',
    ("I'm building a small inventory service in Flask. Orders come in as JSON, I validate them with pydant"
     'ic, then write to PostgreSQL through SQLAlchemy. Under load (about 200 requests a second) some reque'
     "sts hang for 30 seconds and then fail with 'QueuePool limit of size 5 overflow 10 reached, connectio"
     "n timed out'. I close sessions in a teardown handler. What is going on, how do I confirm it, and wha"
     't should I change in the pool settings or the code?'),
    ('Here is my function:\n\ndef load(path):\n    data = {}\n    for line in open(path):\n        key, value ='
     " line.split('=')\n        data[key.strip()] = value.strip()\n    return data\n\nIt breaks on lines with "
     "comments, blank lines and values that contain '='. Rewrite it to handle those, keep it readable, add"
     ' type hints and a few pytest cases that cover the edge cases.'),
    ('We have a monorepo with a React frontend and a Go backend. CI takes 25 minutes because every job ins'
     'talls dependencies from scratch and runs every test even when only the frontend changed. Propose a G'
     'itHub Actions setup with caching and path filters, and show the workflow YAML.'),
    "my script crashes with KeyError: 'user_id' when the JSON has no user",
    "getting 'list index out of range' on the last line of my loop, what am I doing wrong",
    "TypeError: 'NoneType' object is not subscriptable\nit happens after I call get_config()",
    "Why does my React component render twice in development?",
    "pandas says SettingWithCopyWarning, should I worry?",
    "How do I undo the last git commit but keep my changes?",
    "What's the difference between a list and a tuple in Python?",
    "npm install fails with EACCES permission denied",
    "segfault when I free the same pointer twice, how do I find where",
    "Is there a faster way to concatenate strings in a loop in Java?",
    "Explain what a Python decorator does, with an example",
    "How can I make this SQL query use the index on created_at?",
    "docker compose up says port is already allocated",
    "my unit tests pass locally but fail in CI with a timezone error",
    "Convert this bash loop to Python: for f in *.log; do gzip $f; done",
    "Write a regex that matches US phone numbers like (555) 123-4567",
    "What does `yield from` do?",
    "the build is green but the binary segfaults on startup after upgrading gcc",
    "how to mock requests.get in pytest",
    "Rust borrow checker complains: cannot borrow `v` as mutable because it is also borrowed as immutable",
    "Can you review my function? def avg(xs): return sum(xs)/len(xs)",
    "Implement LRU cache without functools",
    "kubectl get pods shows CrashLoopBackOff for my api container",
    "My Flask app returns 405 Method Not Allowed on POST",
    "What's the big-O of inserting into a Python dict?",
    "Translate this JavaScript to TypeScript with proper types: function add(a, b) { return a + b }",
    "go: cannot use x (type int) as type string in argument",
    "how do I read a large CSV in chunks without running out of memory",
    "Why is my recursive function so slow for n = 40?",
    "Write unit tests for a function that parses dates in three formats",
    "Refactor this into smaller functions, it's 300 lines and does everything",
    "my websocket disconnects every 60 seconds behind nginx",
    "UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff in position 0",
    "How should I structure a Python package with a CLI entry point?",
    "what's the idiomatic way to handle errors in Go",
    "Add type hints to this: def merge(a, b): return {**a, **b}",
    "Is it safe to share a requests.Session between threads?",
    "How can I profile which line of my Python program is slowest?",
    "git says 'detached HEAD', did I lose my work?",
    "numpy broadcasting error: operands could not be broadcast together with shapes (3,) (4,)",
    "Write a Dockerfile for a FastAPI app with uvicorn",
    "my cron job runs the script but nothing happens, works fine when I run it by hand",
    "Explain the difference between == and is in Python",
    "Need a one-liner to count lines in all .py files recursively",
    "Why does 0.1 + 0.2 != 0.3 in JavaScript and how do I compare floats?",
    "optimize this: result = []\nfor x in data:\n    if x not in result:\n        result.append(x)",
    "Build a tiny HTTP server in Node that serves one JSON file",
    "What is a race condition and how would I fix one in my counter class?",
    "TS2339: Property 'name' does not exist on type '{}'",
    "How do I paginate results from a REST API that returns a next cursor?",
    "The app leaks memory slowly over days, where do I even start?",
    "Set up pre-commit with ruff and black for my repo",
    "Write a SQL query for the top 3 customers by revenue per month",
    "parse command line args in a shell script with getopts",
    "Is recursion or iteration better for traversing a tree in Python?",
    "Show me how to use asyncio.gather with a timeout",
    "My Jupyter kernel dies when I load the dataset",
    "java.lang.OutOfMemoryError: Java heap space while sorting a big list",
    "Generate a Python class for a bank account with deposit and withdraw",
    "can you explain what this does: [x for row in grid for x in row if x]",
]

CREATIVE = [
    'haiku please',
    'poem: rain',
    'a limerick?',
    'story time! dragons',
    'rhyme something with orange',
    ('Write a short story of about 500 words set in a lighthouse on a northern island in the 1920s. The ke'
     'eper is an old woman who has not spoken to anyone in a year; a young telegraph operator arrives with'
     ' news she does not want to hear. Keep the tone quiet and melancholic, end on an image of the sea rat'
     "her than an explanation, and avoid dialogue tags other than 'said'."),
    ("For our team's end-of-year party I'd like a funny poem, maybe eight stanzas, about everything that w"
     'ent wrong this year: the database migration that took three weekends, the intern who deployed on a F'
     'riday, the coffee machine that broke in March and the printer that nobody can fix. It should rhyme a'
     'nd be kind to everyone in it.'),
    ('Create a fantasy setting for a tabletop campaign: a city built on the back of a sleeping giant turtl'
     'e. Describe three districts, the ruling council, a festival the citizens celebrate, and a rumour tha'
     't could start an adventure. Make it vivid and a little whimsical.'),
    "Write a haiku about recursion",
    "Compose a limerick about a programmer who forgot to save",
    "Write a short story about a lighthouse keeper who receives a letter from the future",
    "A poem about the smell of rain on hot asphalt, please",
    "Tell me a bedtime story about a dragon who is afraid of the dark",
    "Write song lyrics about leaving your hometown",
    "Give me a slogan for a bakery that only sells sourdough",
    "Write a sonnet to my old laptop that finally died",
    "Describe a sunset over a desert city as if it were a painting",
    "Invent a fairy tale where the villain is a broken clock",
    "Write a funny toast for my brother's wedding, he loves fishing and bad puns",
    "Write the opening paragraph of a noir detective novel set on Mars",
    "roses are red, violets are blue... finish this for my coworker who loves Kubernetes",
    "Write a dialogue between the sun and the moon arguing about who works harder",
    "I need a short poem for my grandmother's 90th birthday card",
    "A story in exactly six words about a lost umbrella",
    "Write a rap verse about the life of a database index",
    "Pretend you are a cat and write a diary entry about Monday",
    "Write a melancholic poem about a server being decommissioned",
    "Create a superhero whose power is perfect spreadsheet formatting, with an origin story",
    "Write a letter from a tree to the person who planted it",
    "Describe the first snowfall from the perspective of a puppy",
    "Make up a myth explaining why the sea is salty",
    "Write a thank-you note to my team in the style of Shakespeare",
    "write me a spooky campfire story, not too scary, for 10-year-olds",
    "A ballad about a ship that sailed off the edge of the map",
    "Come up with five names for a fantasy tavern",
    "Write a love poem in which every line mentions a different fruit",
    "Tell the story of a robot learning to paint, in five short scenes",
    "Write a eulogy for my houseplant, make it dramatic and funny",
    "Write an ode to the semicolon",
    "Pen a short poem about the quiet of a library at closing time",
    "Write a scene where two old friends meet by chance at a train station after twenty years",
    "Compose lyrics for a lullaby about stars",
    "Write a fable about a tortoise who becomes a software engineer",
    "Create a riddle-poem whose answer is 'shadow'",
    "Write flash fiction about the last bookstore on Earth",
    "write a short monologue for a villain who thinks he's the hero",
    "Imagine a city where it rains music; describe one afternoon there",
    "Write a jingle for an app that reminds you to drink water",
    "Draft a whimsical product description for a time machine sold on a yard sale",
    "A haiku about merge conflicts",
    "Write a children's rhyme about brushing teeth",
    "Write a poem about the ocean from the point of view of a grain of sand",
    "Tell me a story about a ghost who haunts a data center",
    "Write a short story in which the twist is that the narrator is a dog",
    "Compose a poem about autumn with an ABAB rhyme scheme",
    "Give me three taglines for a documentary about honeybees",
    "Write a postcard from a tourist visiting a city made of glass",
    "Write a breakup letter to coffee",
    "A limerick about a cat who learned Python",
    "Write a poem that turns a bug report into a love story",
    "story idea: a librarian discovers that one book rewrites itself every night. write the first page",
    "Write an epic poem about the invention of the wheel, in the style of Homer",
    "Write a motivational speech from a coach to a team of snails",
]

QA = [
    'capital of Chile?',
    'who is Ada Lovelace',
    'boiling point of ethanol',
    'define entropy',
    'tallest building?',
    ("I'm reading a history of the Industrial Revolution and the author keeps mentioning the enclosure mov"
     'ement as if everyone knows what it was. What was the enclosure movement in England, roughly when did'
     ' it happen, and why do historians connect it with the growth of factory towns?'),
    ('My grandfather worked on ships and always talked about the Plimsoll line. What is the Plimsoll line,'
     ' who was it named after, and why are there several marks instead of one on the side of a ship?'),
    ('Can you tell me what the difference is between the House of Commons and the House of Lords in the Un'
     'ited Kingdom, how members of each get there, and which one has the final say on most laws?'),
    "What is the capital of Australia?",
    "Who wrote Pride and Prejudice?",
    "When did the Berlin Wall fall?",
    "Why is the sky blue?",
    "How many bones are in the adult human body?",
    "What does DNA stand for?",
    "Who painted the Mona Lisa?",
    "Is a tomato a fruit or a vegetable?",
    "What is the boiling point of water at sea level in Fahrenheit?",
    "How does a refrigerator keep food cold?",
    "What's the tallest mountain in Africa?",
    "Explain photosynthesis in simple terms",
    "What is the difference between weather and climate?",
    "Who was the first person to walk on the moon?",
    "How far is the Moon from the Earth?",
    "What language is spoken in Brazil?",
    "largest planet in the solar system?",
    "What causes the seasons on Earth?",
    "speed of light in km per second",
    "Who discovered penicillin?",
    "What is inflation?",
    "What are the three branches of the US government?",
    "How do vaccines work?",
    "What year did the Titanic sink?",
    "Which ocean is the deepest?",
    "what's the chemical symbol for gold",
    "Tell me about the history of the printing press",
    "What is the meaning of the word 'ephemeral'?",
    "How do bees make honey?",
    "What does HTTP stand for?",
    "Who invented the telephone?",
    "What is the population of Canada, roughly?",
    "Why do cats purr?",
    "What is a black hole?",
    "how long does it take light from the sun to reach earth",
    "What's the difference between a virus and a bacterium?",
    "Which element has the atomic number 6?",
    "Where is the Great Barrier Reef?",
    "What is the main ingredient in guacamole?",
    "Who composed the Four Seasons?",
    "What is the longest river in Europe?",
    "Define 'photosynthesis'.",
    "What currency does Japan use?",
    "How many players are on a soccer team?",
    "What is the function of the mitochondria?",
    "Why do leaves change color in autumn?",
    "What did the Rosetta Stone help scholars do?",
    "I keep hearing about the Silk Road, what was it exactly?",
    "What's the freezing point of water in Kelvin?",
    "Who was Ada Lovelace?",
    "What is the Pythagorean theorem?",
    "How do airplanes stay in the air?",
    "What happened at the Battle of Hastings?",
    "quick q: what's the largest desert in the world",
    "What is the smallest country in the world?",
    "Explain what GDP measures",
    "What is the greenhouse effect?",
    "What does a cardiologist do?",
    "What is the official language of Egypt?",
    "Summarize the plot of Romeo and Juliet",
]

REASONING = [
    '2 + 2 * 3?',
    '17 * 23 = ?',
    'is 91 prime?',
    'next: 1, 1, 2, 3, 5, 8, ?',
    'half of a third of 90?',
    ('We are planning a 5-day hiking trip for 6 people. Each person needs 3,000 calories and 3 liters of w'
     'ater per day. We can carry at most 15 kg each, water can be refilled only on day 3, and our dehydrat'
     'ed food has 450 calories per 100 g. Work out whether the plan is feasible, how much food and water e'
     'ach person must carry at the start, and what we should change if it is not.'),
    ('A small bakery sells bread at $4 and cakes at $15. Bread costs $1.50 to make and takes 10 minutes of'
     ' oven time; a cake costs $6 and takes 45 minutes. The oven runs 8 hours a day and they can sell at m'
     'ost 60 loaves and 12 cakes. How many of each should they make to maximise profit? Explain each step '
     'of your reasoning.'),
    ('Three friends, Ana, Ben and Caro, each own a different pet (cat, dog, parrot) and live in different '
     'colored houses (red, blue, green). Ana does not live in the red house. The dog owner lives in the bl'
     'ue house. Caro owns the parrot. Ben does not own the cat. Who lives where and owns which pet? Show h'
     'ow you eliminate the options.'),
    "If a train leaves at 3pm going 60 km/h and a second train leaves the same station at 4pm going 80 km/h, when does the second catch up?",
    "All bloops are razzies and all razzies are lazzies. Are all bloops definitely lazzies?",
    "I have 3 boxes: one has only apples, one only oranges, one both. All labels are wrong. I can pick one fruit from one box. How do I relabel them?",
    "What is the next number in the sequence 2, 6, 12, 20, 30?",
    "Prove that the sum of two odd numbers is always even.",
    "Is 221 a prime number? Show your reasoning.",
    "If it rains, the ground gets wet. The ground is wet. Can we conclude it rained?",
    "A bat and a ball cost $1.10 in total. The bat costs $1.00 more than the ball. How much does the ball cost?",
    "Should I pay off my student loan at 4% interest or invest in an index fund? Walk me through the trade-offs.",
    "Solve for x: 3x + 7 = 22",
    "There are 5 people in a room and each shakes hands with everyone else once. How many handshakes?",
    "What would happen to the tides if the Moon were twice as far away?",
    "my rent is 900 a month, I earn 2400 after tax and spend about 700 on everything else. how many months until I've saved 5000?",
    "Plan a study schedule for three exams in 10 days when the math exam needs twice as much time as the others",
    "A farmer has 17 sheep and all but 9 run away. How many are left?",
    "Which is larger: 2^10 or 10^3? Explain without a calculator.",
    "If you flip a fair coin three times, what is the probability of getting at least two heads?",
    "Knights always tell the truth and knaves always lie. A says 'B is a knave.' B says 'A and I are the same type.' What are A and B?",
    "Three friends split a bill of $84. One had a $12 dessert the others didn't share. What should each pay?",
    "We have two job offers: one pays more but has a 90-minute commute, the other is remote. Help me reason about which to take.",
    "A snail climbs 3 meters up a 10-meter well each day and slides back 2 at night. How many days to get out?",
    "If all roses are flowers and some flowers fade quickly, can we conclude that some roses fade quickly?",
    "Estimate how many piano tuners there are in Chicago, step by step",
    "A recipe for 4 people needs 300 g of flour. How much for 7 people?",
    "Why does a heavier object not fall faster than a lighter one in a vacuum? Reason it through.",
    "Tom is older than Anna, Anna is older than Lee, and Lee is older than Sam. Who is the second youngest?",
    "What's the minimum number of weighings needed to find the one heavier coin among 9?",
    "You have a 3-liter jug and a 5-liter jug. How do you measure exactly 4 liters?",
    "A store raises a price by 20% and then lowers it by 20%. Is the final price the same as the original?",
    "If every employee needs 2 monitors and we are hiring 14 people while 6 monitors are spare, how many do we buy?",
    "Given that x > y and y > z, is x > z necessarily true? What if the relation were 'likes' instead of '>'?",
    "I can take the bus (40 min, $3) or a taxi (15 min, $25). My time is worth $30 an hour. Which is better?",
    "Compare renting versus buying a house over 10 years assuming prices grow 3% per year",
    "How many squares are on a chess board, counting all sizes?",
    "If today is Wednesday, what day of the week will it be in 100 days?",
    "Is the statement 'this sentence is false' true or false? Explain the paradox.",
    "A car uses 6 liters per 100 km. Fuel costs 1.80 per liter. What does a 450 km trip cost?",
    "Sort these by likely cost from cheapest to most expensive and justify: a bicycle, a used car, a laptop, a house",
    "Two pipes fill a tank in 4 and 6 hours respectively. How long together?",
    "What is 15% of 80, and then what is that number divided by 3?",
    "If a meeting has 8 people and each must meet each other one-on-one for 15 minutes, how long does that take in total?",
    "Decide which of three apartments to rent given price, distance to work and size; explain your weighting",
    "Average speed question: 60 km at 30 km/h then 60 km at 60 km/h. What's the average speed for the whole trip?",
    "My team has 4 tasks with deadlines and durations; in what order should we do them to minimize lateness?",
    "If the population of a town doubles every 25 years, how long until it is 8 times larger?",
    "Three switches outside a room control one bulb inside. You can enter once. How do you find which switch works the bulb?",
    "Why might correlation between ice cream sales and drownings not mean one causes the other?",
    "Given a 5% annual return, how long does it take money to double? Use the rule of 72 and check it",
    "What's heavier, a kilogram of feathers or a kilogram of steel? Explain the trick.",
    "How many ways can 4 books be arranged on a shelf?",
    "If I save $50 a week starting in January, when will I have enough for a $1,300 laptop?",
    "A clock shows 3:15. What is the angle between the hour and minute hands?",
    "Can a triangle have two right angles? Reason from the angle sum.",
    "we need to seat 10 guests at 3 tables with at most 4 per table and keep the two cousins apart; is it possible and how",
    "Which is the better deal: 3 for $5 or 5 for $8?",
]

# ---------------------------------------------------------------- templates
LANGS = ["Python", "JavaScript", "Go", "Rust", "Java", "C", "TypeScript", "Ruby", "C++", "Kotlin", "bash"]
CODE_TASKS = [
    "reverses a linked list", "checks whether a string is a palindrome", "merges two sorted lists",
    "parses a CSV file into a list of records", "counts word frequencies in a text file", "validates an email address",
    "flattens a nested list", "computes the nth Fibonacci number iteratively", "removes duplicates while keeping order",
    "reads a JSON config and fills in defaults for missing keys", "retries an HTTP request with exponential backoff",
    "converts a Unix timestamp to an ISO 8601 string", "finds the longest common prefix of a list of strings",
    "implements binary search on a sorted array", "groups records by a key", "debounces a function call",
    "walks a directory tree and lists files larger than 10 MB", "rotates a matrix by 90 degrees",
    "checks if two strings are anagrams", "implements a thread-safe counter", "chunks a list into batches of n",
    "serializes a tree to a string and back", "computes a moving average over a stream",
]
ERRORS = [
    "KeyError: 'user_id'", "IndexError: list index out of range", "TypeError: 'NoneType' object is not iterable",
    "ModuleNotFoundError: No module named 'yaml'", "AttributeError: 'str' object has no attribute 'append'",
    "RecursionError: maximum recursion depth exceeded", "ValueError: too many values to unpack (expected 2)",
    "ZeroDivisionError: division by zero", "java.lang.NullPointerException", "Segmentation fault (core dumped)",
    "TypeError: undefined is not a function", "panic: runtime error: index out of range [3] with length 3",
    "FileNotFoundError: [Errno 2] No such file or directory: 'data.csv'", "ConnectionRefusedError: [Errno 111]",
    "error[E0382]: borrow of moved value", "SyntaxError: unexpected EOF while parsing",
    "PermissionError: [Errno 13] Permission denied", "OSError: [Errno 24] Too many open files",
]
THINGS = ["script", "app", "Flask server", "test suite", "data pipeline", "CLI tool", "Django view", "notebook",
          "worker process", "Lambda function", "game loop", "scraper"]
HOWTOS = [
    "read a file line by line", "sort a dictionary by value", "make an HTTP POST request with JSON",
    "run two tasks concurrently", "format a date as YYYY-MM-DD", "split a string on whitespace",
    "catch several exceptions at once", "write a unit test for code that calls an API",
    "mock the current time in a test", "deep copy an object", "reverse a string", "check if a key exists in a map",
    "parse command line arguments", "measure how long a function takes", "read environment variables",
    "remove an element from a list while iterating", "connect to a PostgreSQL database", "log to a file and the console",
]
SNIPPETS = [
    "for i in range(len(xs)):\n    xs[i] += 1",
    "SELECT name, COUNT(*) FROM orders GROUP BY name HAVING COUNT(*) > 5;",
    "const doubled = items.map(x => x * 2).filter(Boolean);",
    "def f(n):\n    return n if n < 2 else f(n - 1) + f(n - 2)",
    "#include <stdio.h>\nint main() { int a[3]; printf(\"%d\", a[5]); }",
    "git rebase -i HEAD~3",
    "docker run -p 8000:8000 -v $(pwd):/app myimage",
    "import numpy as np\na = np.zeros((3, 3))\na[1, :] = 5",
    "squares = {k: v ** 2 for k, v in zip(keys, values)}",
    "fn main() { let v = vec![1, 2, 3]; println!(\"{:?}\", v[3]); }",
    "public static void main(String[] args) { System.out.println(args[0].length()); }",
    "df.groupby('city')['sales'].sum().sort_values(ascending=False).head(10)",
    "while True:\n    line = f.readline()\n    if not line:\n        break",
    "async def fetch(url):\n    async with session.get(url) as r:\n        return await r.json()",
    "awk -F, '{print $2}' data.csv | sort | uniq -c | sort -rn",
    "try:\n    value = config['timeout']\nexcept KeyError:\n    value = 30",
    "x = [i for i in range(10) if i % 2]",
    "let total = 0; for (const n of nums) { total += n; }",
    "CREATE TABLE users (id SERIAL PRIMARY KEY, email TEXT UNIQUE NOT NULL);",
    "if err != nil {\n    return nil, fmt.Errorf(\"open: %w\", err)\n}",
    "class Node:\n    def __init__(self, val):\n        self.val = val\n        self.next = None",
    "curl -X POST -H 'Content-Type: application/json' -d '{\"a\": 1}' localhost:8080/api",
    "with open('out.txt', 'w') as fh:\n    fh.write(data)",
    "std::vector<int> v{3, 1, 2};\nstd::sort(v.begin(), v.end());",
    "kubectl rollout restart deployment/web -n prod",
    "def add(a: int, b: int) -> int:",
    "echo $PATH | tr ':' '\\n'",
    "useEffect(() => { fetchData(); }, []);",
    "SELECT * FROM a LEFT JOIN b ON a.id = b.a_id WHERE b.id IS NULL;",
    "result = sorted(people, key=lambda p: (p.age, p.name))",
]
SNIPPET_FRAMES = ["{s}", "{s}", "fix this:\n{s}", "what's wrong with this?\n{s}", "{s}\nwhy is this slow?",
                  "explain this code:\n{s}", "refactor:\n{s}", "{s}\n\ndoesn't work", "can this be simplified?\n{s}",
                  "add comments to\n{s}"]

FORMS = ["poem", "haiku", "limerick", "sonnet", "short story", "song", "fable", "bedtime story", "rap verse", "ballad",
         "free-verse poem", "piece of flash fiction"]
TOPICS = [
    "recursion", "a lonely server in a data center", "the first day of spring", "a cat who learns to code",
    "garbage collection", "the ocean at night", "a debugging session at 3am", "autumn leaves", "a robot falling in love",
    "morning coffee", "a lighthouse keeper", "merge conflicts", "the moon", "an abandoned train station",
    "Python's indentation", "a city in the rain", "the last day of summer", "a grandmother's kitchen",
    "a dragon who collects teacups", "the internet going down for a day", "a lost sock", "migrating birds",
    "a quantum computer dreaming", "friendship", "a mountain village in winter",
]
AUTHORS = ["Edgar Allan Poe", "Dr. Seuss", "Emily Dickinson", "a pirate", "Shakespeare", "a noir detective",
           "a sports commentator", "Jane Austen", "a medieval bard"]
OCCASIONS = ["my sister's wedding", "a retirement party", "a team offsite", "my dad's 60th birthday",
             "a farewell to a coworker", "our anniversary", "a graduation", "a product launch"]
PRODUCTS = ["a reusable water bottle", "a cat cafe", "a bike repair shop", "an open-source database",
            "a language-learning app", "a vegan bakery", "a rainy-day umbrella rental", "a coding bootcamp"]
CHARACTERS = [("a retired astronaut", "her teenage grandson"), ("a compiler", "a programmer"),
              ("the wind", "a mountain"), ("a pirate captain", "a parrot who wants a raise"),
              ("a barista", "a time traveller"), ("a chess piece", "the player"), ("Winter", "Spring")]

COUNTRIES = ["France", "Kenya", "Canada", "Japan", "Peru", "Norway", "Vietnam", "Egypt", "Chile", "Poland",
             "Mongolia", "Portugal", "Ghana", "New Zealand"]
BOOKS = ["1984", "Moby-Dick", "War and Peace", "The Hobbit", "One Hundred Years of Solitude", "Frankenstein",
         "The Great Gatsby", "Don Quixote", "Beloved", "The Odyssey"]
EVENTS = ["the French Revolution", "the first Moon landing", "the fall of the Roman Empire", "World War I",
          "the signing of the Magna Carta", "the invention of the printing press", "the Chernobyl disaster",
          "the first modern Olympic Games"]
CONCEPTS = ["plate tectonics", "inflation", "the immune system", "photosynthesis", "black holes", "supply and demand",
            "the water cycle", "evolution by natural selection", "compound interest", "how the heart pumps blood",
            "the electoral college", "nuclear fusion", "how rainbows form", "the placebo effect"]
PAIRS = [("weather", "climate"), ("a virus", "a bacterium"), ("an alligator", "a crocodile"),
         ("a comet", "an asteroid"), ("baking soda", "baking powder"), ("a republic", "a democracy"),
         ("a tsunami", "a tidal wave"), ("latitude", "longitude"), ("affect", "effect")]
LANDMARKS = ["the Eiffel Tower", "Mount Everest", "the Statue of Liberty", "the Great Pyramid of Giza",
             "Big Ben", "the Burj Khalifa"]
PEOPLE = ["Marie Curie", "Nelson Mandela", "Leonardo da Vinci", "Cleopatra", "Isaac Newton", "Frida Kahlo",
          "Genghis Khan", "Alan Turing"]

ANIMALS = ["elephants", "octopuses", "koalas", "penguins", "hummingbirds", "sea turtles", "wolves", "honeybees",
           "giraffes", "axolotls"]
SCIENCE = ["table salt", "ozone", "the Higgs boson", "graphene", "insulin", "the ozone layer", "radium", "DNA",
           "carbon dating", "the Doppler effect"]

NAMES = ["Alice", "Bob", "Maria", "Ken", "Priya", "Omar", "Lena", "Sam"]
OPTIONS = [
    ("lease a car", "buy a used one", "I drive 20,000 km a year and plan to keep it 5 years"),
    ("take the job in the city", "stay at my current remote job", "the city job pays 15% more but rent is 30% higher"),
    ("learn Spanish", "learn Mandarin", "I have 30 minutes a day and want to travel within two years"),
    ("rent a bigger apartment", "stay and save", "my lease ends next month and prices just rose 10%"),
    ("use a monolith", "split into microservices", "we are 4 engineers and expect 10x traffic next year"),
    ("fly", "take the overnight train", "the train costs less but takes 11 hours"),
    ("hire a senior engineer", "hire two juniors", "we have budget for either and a launch in six months"),
]


def _pick(rng: random.Random, items: list, k: int) -> list:
    return rng.sample(items, min(k, len(items)))


def coding_templates(rng: random.Random):
    for lang, task in _pick(rng, list(itertools.product(LANGS, CODE_TASKS)), 26):
        pattern = rng.choice(["Write a {l} function that {t}.", "write a {l} function that {t}",
                              "Can you show me {l} code that {t}?", "I need a {l} snippet that {t}",
                              "Implement something in {l} that {t}, with tests."])
        yield "code-write", pattern.format(l=lang, t=task)
    for err, thing in _pick(rng, list(itertools.product(ERRORS, THINGS)), 26):
        pattern = rng.choice(["my {t} crashes with {e}", "getting {e} when I run my {t}, any idea why?",
                              "{e} on line 42 of my {t}", "why do I get {e} here?", "{e}\nhelp",
                              "Our {t} started failing this morning with {e}. Nothing changed on our side."])
        yield "code-error", pattern.format(t=thing, e=err)
    for how, lang in _pick(rng, list(itertools.product(HOWTOS, LANGS)), 24):
        pattern = rng.choice(["How do I {h} in {l}?", "how to {h} {l}", "What's the best way to {h} in {l}?",
                              "{l}: {h}?", "In {l}, is there a built-in way to {h}?"])
        yield "code-howto", pattern.format(h=how, l=lang)
    for snippet, frame in _pick(rng, list(itertools.product(SNIPPETS, SNIPPET_FRAMES)), 34):
        yield "code-snippet", frame.format(s=snippet)


def creative_templates(rng: random.Random):
    for form, topic in _pick(rng, list(itertools.product(FORMS, TOPICS)), 48):
        pattern = rng.choice(["Write a {f} about {t}.", "write a {f} about {t}", "Could you compose a {f} about {t}?",
                              "{f} about {t}, please", "I'd love a {f} on {t}", "Give me a {f} about {t}",
                              "Can you write me a short {f} about {t} for my blog?"])
        yield "creative-form", pattern.format(f=form, t=topic)
    for form, topic, author in _pick(rng, list(itertools.product(FORMS[:6], TOPICS, AUTHORS)), 20):
        yield "creative-style", rng.choice(["Write a {f} about {t} in the style of {a}.",
                                            "{f} about {t}, written as {a} would",
                                            "Imagine {a} wrote a {f} about {t}. Write it."]).format(f=form, t=topic,
                                                                                                  a=author)
    for occasion in OCCASIONS:
        yield "creative-occasion", rng.choice(["Write a toast for {o}", "I need a short speech for {o}, funny but warm",
                                               "Can you write a card message for {o}?",
                                               "write a few rhyming lines for {o}"]).format(o=occasion)
    for product in PRODUCTS:
        yield "creative-slogan", rng.choice(["Give me a slogan for {p}", "Come up with 5 taglines for {p}",
                                             "Write a catchy jingle for {p}", "brainstorm names for {p}"]).format(p=product)
    for a, b in CHARACTERS:
        topic = rng.choice(TOPICS)
        yield "creative-dialogue", rng.choice(["Write a dialogue between {a} and {b} about {t}",
                                               "Write a short scene where {a} meets {b}",
                                               "Tell a story about {a} and {b}, ending with a surprise"]
                                              ).format(a=a, b=b, t=topic)
    for topic in _pick(rng, TOPICS, 12):
        yield "creative-describe", rng.choice(["Describe {t} in vivid, poetic language",
                                               "Write the opening line of a novel about {t}",
                                               "Invent a myth that explains {t}",
                                               "Paint a picture with words: {t}"]).format(t=topic)


def _two(rng: random.Random, patterns: list[str]) -> list[str]:
    return rng.sample(patterns, 2)


def qa_templates(rng: random.Random):
    for country in COUNTRIES:
        for pattern in _two(rng, ["What is the capital of {c}?", "capital of {c}?", "What language is spoken in {c}?",
                                  "What currency is used in {c}?", "How many people live in {c}?",
                                  "What is the highest mountain in {c}?"]):
            yield "qa-country", pattern.format(c=country)
    for animal in ANIMALS:
        yield "qa-animal", rng.choice(["How long do {a} live?", "What do {a} eat?", "Where do {a} live in the wild?",
                                       "Are {a} endangered?", "how big do {a} get"]).format(a=animal)
    for thing in SCIENCE:
        yield "qa-science", rng.choice(["What is {t}?", "What is the chemical formula of {t}?",
                                        "Who discovered {t}?", "what is {t} used for"]).format(t=thing)
    for book in BOOKS:
        yield "qa-book", rng.choice(["Who wrote {b}?", "When was {b} published?", "What is {b} about?",
                                     "who is the author of {b}"]).format(b=book)
    for event in EVENTS:
        yield "qa-event", rng.choice(["When did {e} happen?", "What caused {e}?", "Tell me about {e}",
                                      "Why was {e} important?", "what year was {e}"]).format(e=event)
    yield from _qa_explanations(rng)


def _qa_explanations(rng: random.Random):
    for concept in CONCEPTS:
        for pattern in _two(rng, ["Explain {c} in simple terms", "How does {c} work?", "What is {c}?",
                                  "Can you give me a short explanation of {c}?",
                                  "I never understood {c}. What is it, briefly?"]):
            yield "qa-concept", pattern.format(c=concept)
    for a, b in PAIRS:
        yield "qa-pair", rng.choice(["What's the difference between {a} and {b}?", "{a} vs {b}: what's the difference?",
                                     "How is {a} different from {b}?"]).format(a=a, b=b)
    for landmark in LANDMARKS:
        yield "qa-landmark", rng.choice(["How tall is {l}?", "When was {l} built?", "Where is {l}?",
                                         "Who built {l}?"]).format(l=landmark)
    for person in PEOPLE:
        for pattern in _two(rng, ["Who was {p}?", "What is {p} famous for?", "When was {p} born?",
                                  "Tell me about {p}", "what did {p} do"]):
            yield "qa-person", pattern.format(p=person)


def reasoning_templates(rng: random.Random):
    for _ in range(18):
        a, b, h = rng.randint(40, 90), rng.randint(60, 120), rng.randint(1, 3)
        yield "rs-trains", rng.choice([
            "A train leaves at noon at {a} km/h; another leaves the same station {h} hours later at {b} km/h. "
            "When does the second catch the first?",
            "Two cars start {d} km apart and drive toward each other at {a} and {b} km/h. When do they meet?",
            "If I drive {d} km at {a} km/h and come back at {b} km/h, what is my average speed?",
        ]).format(a=a, b=b, h=h, d=rng.randint(100, 500))
    for _ in range(16):
        n, d, m = rng.randint(3, 12), rng.randint(4, 20), rng.randint(2, 15)
        yield "rs-work", rng.choice([
            "If {n} workers build a wall in {d} days, how long would {m} workers take?",
            "{n} machines make {d} parts in an hour. How many machines are needed for {x} parts an hour?",
            "A team of {n} finishes a project in {d} weeks. If {m} people join halfway, when do they finish?",
        ]).format(n=n, d=d, m=m, x=d * m)
    for _ in range(14):
        name1, name2 = rng.sample(NAMES, 2)
        a, k = rng.randint(2, 12), rng.randint(2, 4)
        yield "rs-ages", rng.choice([
            "{x} is {a} years older than {y}. In {a} years {x} will be {k} times as old as {y} was {a} years ago. "
            "How old are they?",
            "{x} is {k} times as old as {y}. In {a} years the sum of their ages will be {s}. How old is {y} now?",
            "{x} has {s} marbles and gives {y} a third of them, then {y} gives back {a}. Who has more, and by how many?",
        ]).format(x=name1, y=name2, a=a, k=k, s=rng.randint(30, 90))
    for _ in range(16):
        price, pct = rng.randint(20, 400), rng.choice([10, 15, 20, 25, 30, 40])
        yield "rs-percent", rng.choice([
            "A jacket costs ${p} after a {q}% discount. What was the original price?",
            "If a ${p} item is discounted by {q}% and then taxed at 8%, what do I pay?",
            "My salary of ${p}0 a month rises {q}% and then falls {q}%. Am I back where I started?",
            "Is a {q}% discount followed by another 10% discount the same as a {r}% discount? Explain.",
        ]).format(p=price, q=pct, r=pct + 10)
    for _ in range(16):
        n, k, j = rng.randint(10, 60), rng.randint(2, 9), rng.randint(2, 9)
        yield "rs-counting", rng.choice([
            "I have {n} apples, give away {k}, then buy {j} more and split them evenly among 3 friends. How many each, "
            "and how many are left over?",
            "A class of {n} students forms teams of {k}. How many teams, and how many students are left without a team?",
            "How many different pairs can be chosen from {k} people? And groups of three?",
            "A bus has {n} passengers; at each of {k} stops, {j} get off and 2 get on. How many are left?",
        ]).format(n=n, k=k, j=j)
    for a, b, why in OPTIONS:
        yield "rs-decide", rng.choice([
            "Should I {a} or {b}? {w}. Walk me through the trade-offs.",
            "Help me decide: {a} or {b}, given that {w}.",
            "{w}. Is it smarter to {a} or to {b}? Reason step by step.",
        ]).format(a=a, b=b, w=why)
    for _ in range(14):
        red, blue, draw = rng.randint(2, 9), rng.randint(2, 9), rng.choice([2, 3])
        yield "rs-probability", rng.choice([
            "A bag has {r} red and {b} blue marbles. If I draw {d} without replacement, what is the probability "
            "they are all red?",
            "I roll two dice. What is the probability the sum is {s}?",
            "{r} of {t} light bulbs are faulty. If I test {d} at random, what are the odds at least one is faulty?",
        ]).format(r=red, b=blue, d=draw, s=rng.randint(3, 11), t=red + blue)
    for _ in range(10):
        tasks = rng.randint(3, 6)
        hours = [rng.randint(1, 8) for _ in range(tasks)]
        yield "rs-planning", rng.choice([
            "I have {n} tasks taking {h} hours and only 8 hours a day. How should I schedule them to finish soonest?",
            "Plan the order of {n} errands ({h} hours each) so I'm home by 6pm starting at 9am, with a 1-hour lunch.",
            "Split jobs of {h} hours between two people so both finish as close together as possible.",
        ]).format(n=tasks, h=", ".join(map(str, hours)))
    syllogisms = [("cats", "mammals", "animals"), ("squares", "rectangles", "polygons"),
                  ("sparrows", "birds", "animals with feathers"), ("violins", "string instruments", "instruments")]
    for x, y, z in syllogisms:
        yield "rs-logic", rng.choice([
            "All {x} are {y} and all {y} are {z}. Must all {x} be {z}? What if only some {y} were {z}?",
            "Some {z} are not {y}. Does it follow that some {x} are not {y}? Explain the logic.",
            "If no {y} are {z}, can any {x} be {z}? Reason carefully.",
        ]).format(x=x, y=y, z=z)
    for _ in range(12):
        start, step = rng.randint(1, 9), rng.randint(2, 7)
        seq = [start + step * i * i for i in range(5)]
        yield "rs-sequence", rng.choice(["What comes next: {s}, ...?", "Find the pattern and the next term: {s}",
                                         "what's the next number in {s}"]).format(s=", ".join(map(str, seq)))


# ---------------------------------------------------------------- complexity annotation
# How much work an answer takes, 0-1: a base per kind of prompt (a capital is a lookup, a
# trade-off needs several steps), raised by length and by explicit demands for depth.
# The classifier's complexity head learns this annotation.
KIND_COMPLEXITY = {
    "coding": 0.45, "creative": 0.35, "qa": 0.2, "reasoning": 0.6,
    "code-write": 0.5, "code-error": 0.4, "code-howto": 0.3, "code-snippet": 0.35,
    "creative-form": 0.35, "creative-style": 0.45, "creative-occasion": 0.3, "creative-slogan": 0.2,
    "creative-dialogue": 0.45, "creative-describe": 0.3,
    "qa-country": 0.1, "qa-book": 0.15, "qa-event": 0.3, "qa-concept": 0.35, "qa-pair": 0.3, "qa-landmark": 0.1,
    "qa-person": 0.2, "qa-animal": 0.15, "qa-science": 0.2,
    "rs-trains": 0.6, "rs-work": 0.5, "rs-ages": 0.7, "rs-percent": 0.5, "rs-counting": 0.5, "rs-decide": 0.75,
    "rs-logic": 0.65, "rs-sequence": 0.55, "rs-probability": 0.65, "rs-planning": 0.75,
}
DEPTH_WORDS = ("step by step", "walk me through", "explain", "detailed", "with tests", "trade-off", "justify",
               "prove", "reason", "compare")


def complexity_of(text: str, kind: str) -> float:
    words = len(text.split())
    depth = sum(word in text.lower() for word in DEPTH_WORDS)
    value = 0.8 * KIND_COMPLEXITY[kind] + 0.2 * min(1.0, words / 60.0) + 0.08 * min(depth, 2)
    return round(min(1.0, value), 2)


# ---------------------------------------------------------------- paraphrase patterns
PREFIXES = ["", "", "", "", "Hey, ", "Quick question: ", "Please ", "Can you help? ", "hi! ", "I was wondering: "]
SUFFIXES = ["", "", "", "", " Thanks!", " Keep it short.", " Please be detailed.", " thx", " Any ideas?"]


def paraphrase(text: str, rng: random.Random) -> str:
    """Vary surface form without changing the task: greetings, sign-offs, case, punctuation."""
    prefix, suffix = rng.choice(PREFIXES), rng.choice(SUFFIXES)
    if prefix.strip() == "Please" and text[:1].isupper():
        text = text[0].lower() + text[1:]
    out = prefix + text + suffix
    roll = rng.random()
    if roll < 0.12:
        out = out.lower()
    elif roll < 0.2:
        out = out.rstrip("?.!")
    return out


# Whole templates held out: tune (lexical rules, thresholds) and test (reported, never tuned on).
# At least one template per task on each side, chosen to keep the common forms in train.
TUNE_TEMPLATES = {"code-howto", "creative-describe", "creative-slogan", "qa-book", "qa-landmark", "qa-pair",
                  "rs-ages", "rs-sequence"}
TEST_TEMPLATES = {"code-error", "creative-style", "creative-occasion", "qa-person", "qa-animal", "qa-event",
                  "rs-trains", "rs-probability"}
HAND_SHARES = (("tune", 0.15), ("test", 0.15))  # the rest of the hand-written prompts train


def split_of(group: str, text: str) -> str:
    """The split of a template (by name) or of a hand-written prompt (by a stable hash of its text)."""
    if "-hand-" not in group:
        return "tune" if group in TUNE_TEMPLATES else "test" if group in TEST_TEMPLATES else "train"
    bucket = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") / 2**32
    edge = 0.0
    for split, share in HAND_SHARES:
        edge += share
        if bucket < edge:
            return split
    return "train"


def candidates(seed: int = SEED) -> list[dict]:
    """Every generated record with its split, before de-duplication."""
    rng = random.Random(seed)
    records = []
    hand = {"coding": CODING, "creative": CREATIVE, "qa": QA, "reasoning": REASONING}
    for label, prompts in hand.items():
        for text in prompts:
            # named by content, so adding a prompt never moves the others across the split
            digest = hashlib.sha256(text.encode()).hexdigest()[:10]
            records.append({"text": text, "label": label, "group": f"{label}-hand-{digest}",
                            "complexity": complexity_of(text, label)})
    makers = {"coding": coding_templates, "creative": creative_templates, "qa": qa_templates,
              "reasoning": reasoning_templates}
    for label, make in makers.items():
        for template, text in make(rng):
            text = paraphrase(text, rng)
            records.append({"text": text, "label": label, "group": template,
                            "complexity": complexity_of(text, template)})
    for record in records:
        record["split"] = split_of(record["group"], record["text"])
    return records


def deduplicate(records: list[dict], embed) -> tuple[list[dict], list[str]]:
    """Drop repeats of a normalised text, and near-duplicates of a prompt on an earlier split.

    embed: list of texts -> unit-length embeddings (dedup.MiniLMEmbedder). Returns the kept
    records in their original order and one line per dropped prompt.
    """
    from pointsman.export.dedup import NEAR_DUPLICATE_COSINE, near_duplicates, normalise

    order = {"train": 0, "tune": 1, "test": 2}
    ranked = sorted(range(len(records)), key=lambda i: order[records[i]["split"]])  # stable
    seen: set[str] = set()
    kept, dropped = [], []
    for i in ranked:
        key = normalise(records[i]["text"])
        if key in seen:
            dropped.append(f"{records[i]['split']}: repeats a normalised text: {records[i]['text']!r}")
        else:
            seen.add(key)
            kept.append(i)
    vectors = embed([records[i]["text"] for i in kept])
    survivors = [k for k, i in enumerate(kept) if records[i]["split"] == "train"]
    for split in ("tune", "test"):
        members = [k for k, i in enumerate(kept) if records[i]["split"] == split]
        close = {q: (p, c) for q, p, c in near_duplicates(vectors[members], vectors[survivors], NEAR_DUPLICATE_COSINE)}
        for q, k in enumerate(members):
            if q in close:
                p, c = close[q]
                dropped.append(f"{split}: cosine {c:.3f} to {records[kept[survivors[p]]]['split']} prompt "
                               f"{records[kept[survivors[p]]]['text']!r}: {records[kept[k]]['text']!r}")
            else:
                survivors.append(k)
    keep = {kept[k] for k in survivors}
    return [r for i, r in enumerate(records) if i in keep], dropped


def generate(seed: int = SEED, embed=None) -> list[dict]:
    """The records of prompts.jsonl: candidates, split, de-duplicated."""
    if embed is None:
        from pointsman.export.dedup import MiniLMEmbedder

        embed = MiniLMEmbedder()
    return deduplicate(candidates(seed), embed)[0]


def render(records: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pointsman.export.prompt_set", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--check", action="store_true", help="exit 1 if the file differs from a fresh generation")
    args = parser.parse_args(argv)
    from pointsman.export.dedup import MiniLMEmbedder

    records, dropped = deduplicate(candidates(), MiniLMEmbedder())
    text = render(records)
    if args.check:
        current = args.out.read_text() if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is stale: run python -m pointsman.export.prompt_set", file=sys.stderr)  # noqa: T201
            return 1
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    for line in dropped:
        print(f"dropped {line}", file=sys.stderr)  # noqa: T201
    print(f"wrote {len(text.splitlines())} prompts to {args.out}", file=sys.stderr)  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
