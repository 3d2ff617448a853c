"""Demo content for a new site: sections, regions, sources and stories, all written for Newsreader.

The publishers and events are invented; `manage.py load_demo` loads them (safe to run again).
"""

# The demo pictures are our own artwork (see load_demo): credited to the demo, not to a photographer.
IMAGE_PROVIDER = "Newsreader demo"

SECTIONS = [
    {
        "name": "World",
        "slug": "world",
        "iptc_code": "medtop:16000000",
        "description": "International affairs, diplomacy, conflicts, elections abroad and relations between countries.",
    },
    {
        "name": "Politics",
        "slug": "politics",
        "iptc_code": "medtop:11000000",
        "description": "Governments, parliaments, parties, campaigns, public policy and the people who make laws.",
    },
    {
        "name": "Business",
        "slug": "business",
        "iptc_code": "medtop:04000000",
        "description": "Companies, markets, trade, jobs, prices, earnings, banks and the wider economy.",
    },
    {
        "name": "Technology",
        "slug": "technology",
        "iptc_code": "medtop:13000000",
        "description": "Computing, software, the internet, devices, chips, artificial intelligence and space.",
    },
    {
        "name": "Health",
        "slug": "health",
        "iptc_code": "medtop:07000000",
        "description": "Medicine, hospitals, public health, disease, research on treatments and wellbeing.",
    },
    {
        "name": "Sport",
        "slug": "sport",
        "iptc_code": "medtop:15000000",
        "description": "Matches, tournaments, athletes, clubs, results and transfers across every sport.",
    },
    {
        "name": "Culture",
        "slug": "culture",
        "iptc_code": "medtop:01000000",
        "description": "Film, music, television, books, art, celebrities and the entertainment industry.",
    },
    {
        "name": "Environment",
        "slug": "environment",
        "iptc_code": "medtop:06000000",
        "description": "Climate, weather, energy transition, nature, pollution and conservation.",
    },
]

REGIONS = [
    ("Europe", None),
    ("Asia", None),
    ("Africa", None),
    ("Americas", None),
    ("Oceania", None),
    ("Portugal", "Europe"),
    ("Norway", "Europe"),
    ("Japan", "Asia"),
    ("China", "Asia"),
    ("Kenya", "Africa"),
    ("Chile", "Americas"),
    ("New Zealand", "Oceania"),
]

SOURCES = [
    {
        "name": "Harbour Ledger",
        "slug": "harbour-ledger",
        "homepage_url": "https://harbour-ledger.example.org/",
        "feed_url": "https://harbour-ledger.example.org/feed.xml",
    },
    {
        "name": "Northwind Tribune",
        "slug": "northwind-tribune",
        "homepage_url": "https://northwind-tribune.example.org/",
        "feed_url": "https://northwind-tribune.example.org/rss",
    },
    {
        "name": "Meridian Science Desk",
        "slug": "meridian-science-desk",
        "homepage_url": "https://meridian.example.org/",
        "feed_url": "https://meridian.example.org/atom.xml",
    },
]

STORIES = [
    {
        "slug": "lisbon-tram-line-returns-with-battery-cars",
        "title": "Lisbon's oldest tram line returns with battery cars that climb without wires",
        "dek": "The city has reopened a hillside route closed for a decade. The new cars store braking energy and "
        "climb the steepest stretch on their batteries alone.",
        "source": "harbour-ledger",
        "section": "technology",
        "region": "Portugal",
        "tags": ["Public transport", "Batteries", "Cities"],
        "hours_ago": 3,
        "ai_generated": True,
        "colours": ((232, 176, 74), (40, 74, 120)),
        "alt": "A yellow tram climbing a steep cobbled street between pastel houses at dusk.",
        "body": """
<h2>The route</h2>
<p>The line winds up from the river to the old castle quarter, with gradients that once needed two motors
and a brave driver. It closed in 2016 after its overhead wires were judged too costly to repair.</p>
<h2>What changed</h2>
<p>Each new car carries a battery pack under its floor. Going downhill the motors work as generators and
refill the pack, so the climb back up is paid for by the descent. Engineers say no overhead wire is needed
on the steepest 800 metres.</p>
<h2>Why it matters</h2>
<p>Hill cities across southern Europe have shelved tram lines because rewiring narrow streets is expensive.
If the Lisbon cars hold up through a wet winter, planners elsewhere say they will take a closer look.</p>
""",
    },
    {
        "slug": "norwegian-fjord-ferries-switch-to-shore-power",
        "title": "Norwegian fjord ferries switch to shore power overnight",
        "dek": "Twelve ferries now charge at their home quays each night. Operators say fuel bills fell by half in "
        "the first quarter.",
        "source": "northwind-tribune",
        "section": "environment",
        "region": "Norway",
        "tags": ["Shipping", "Electric vehicles", "Energy"],
        "hours_ago": 8,
        "ai_generated": False,
        "colours": ((70, 140, 170), (20, 40, 60)),
        "alt": "A white car ferry moored at a wooden quay under snowy mountains.",
        "body": """
<p>The ferries cross short stretches of water dozens of times a day, which makes them an easy fit for
batteries: a few minutes at each quay tops them up, and a long charge at night does the rest.</p>
<p>Crews say the ships are quieter, and residents near the quays report less smoke in winter, when the
engines used to idle for warmth.</p>
<blockquote>"The hardest part was the grid connection, not the ship," one harbour manager said.</blockquote>
""",
    },
    {
        "slug": "kenyan-growers-trial-sensor-irrigation",
        "title": "Kenyan tea growers trial soil sensors to water only where it is dry",
        "dek": "Smallholders in the highlands are testing cheap moisture probes linked to text messages. Early "
        "results suggest a third less water for the same harvest.",
        "source": "meridian-science-desk",
        "section": "environment",
        "region": "Kenya",
        "tags": ["Agriculture", "Sensors", "Water"],
        "hours_ago": 20,
        "ai_generated": True,
        "colours": ((90, 150, 80), (30, 60, 30)),
        "alt": "Rows of bright green tea bushes on a misty hillside.",
        "body": """
<h2>The trial</h2>
<p>Forty farms placed probes at two depths in their fields. When the soil dries past a threshold, the
farmer gets a text message naming the plot that needs water.</p>
<h2>The evidence</h2>
<p>Over one dry season, participating farms used about a third less water than neighbours, with similar
yields. The researchers caution that one season is not enough to be sure.</p>
<h2>What comes next</h2>
<p>A cooperative plans to extend the trial to 400 farms next year, paying for probes from the water saved.</p>
""",
    },
    {
        "slug": "chilean-observatory-maps-nearby-dwarf-stars",
        "title": "Chilean observatory maps a thousand dwarf stars within 60 light years",
        "dek": "A survey from the Atacama desert has catalogued faint red dwarfs close to the Sun. Several host "
        "planets that could be studied by the next generation of telescopes.",
        "source": "meridian-science-desk",
        "section": "technology",
        "region": "Chile",
        "tags": ["Astronomy", "Space"],
        "hours_ago": 30,
        "ai_generated": False,
        "colours": ((30, 30, 80), (180, 90, 60)),
        "alt": "Telescope domes on a desert ridge under a sky full of stars.",
        "body": """
<p>Red dwarfs are the most common stars in the galaxy, but they are dim enough that many close ones were
missed by earlier surveys. The new catalogue fills gaps in the southern sky.</p>
<p>Astronomers say the list will help choose targets for instruments that can read the light passing
through a planet's atmosphere.</p>
""",
    },
    {
        "slug": "osaka-chipmaker-opens-training-school",
        "title": "Osaka chipmaker opens a school to train its own technicians",
        "dek": "Short of skilled staff, a mid-sized semiconductor firm will pay students while they learn. The "
        "first class of sixty starts in April.",
        "source": "harbour-ledger",
        "section": "business",
        "region": "Japan",
        "tags": ["Semiconductors", "Jobs", "Education"],
        "hours_ago": 44,
        "ai_generated": False,
        "colours": ((120, 120, 140), (30, 30, 40)),
        "alt": "Close-up of a silicon wafer reflecting rainbow colours.",
        "body": """
<p>The company says it could not hire enough clean-room technicians to run a new production line. Rather
than wait, it will train them itself in an 18-month programme.</p>
<p>Students are paid a monthly stipend and promised a job at the end, in exchange for staying three years.</p>
""",
    },
    {
        "slug": "wellington-rugby-club-women-sell-out",
        "title": "Wellington's women's rugby side sells out its home stadium for the first time",
        "dek": "More than 30,000 tickets went in a day for the season final. The club says it will move more "
        "women's fixtures to the main ground.",
        "source": "northwind-tribune",
        "section": "sport",
        "region": "New Zealand",
        "tags": ["Rugby", "Women's sport"],
        "hours_ago": 52,
        "ai_generated": False,
        "colours": ((20, 20, 20), (60, 120, 200)),
        "alt": "A packed rugby stadium at night under floodlights.",
        "body": """
<p>The sell-out follows a season in which attendance grew at every home game. Ticket prices were kept
below those of the men's fixtures, a choice the club says it will keep.</p>
<p>Players said the crowd was the loudest they had heard. The final is on Saturday evening.</p>
""",
    },
    {
        "slug": "shenzhen-repair-cafes-spread",
        "title": "Repair cafés spread across Shenzhen as phone owners keep devices longer",
        "dek": "Volunteer workshops now open weekly in a dozen districts. Organisers say batteries and screens "
        "are the most common fixes.",
        "source": "harbour-ledger",
        "section": "technology",
        "region": "China",
        "tags": ["Smartphones", "Repair", "Cities"],
        "hours_ago": 70,
        "ai_generated": True,
        "colours": ((200, 80, 80), (40, 20, 60)),
        "alt": "Hands with tweezers opening a smartphone on a workbench.",
        "body": """
<h2>The trend</h2>
<p>Owners are keeping phones for longer as new models bring smaller improvements. Repair cafés offer tools,
spare parts at cost and advice from volunteers.</p>
<h2>The numbers</h2>
<p>Organisers counted more than 5,000 repairs in the last year, most of them battery swaps and cracked
screens. About one device in ten could not be saved.</p>
""",
    },
    {
        "slug": "portuguese-parliament-debates-four-day-week",
        "title": "Portuguese parliament debates extending the four-day week trial",
        "dek": "A pilot in private firms ends this spring. Lawmakers are split on whether to open it to the public "
        "sector.",
        "source": "northwind-tribune",
        "section": "politics",
        "region": "Portugal",
        "tags": ["Work", "Labour law"],
        "hours_ago": 96,
        "ai_generated": False,
        "colours": ((150, 40, 40), (230, 200, 120)),
        "alt": "The facade of a neoclassical parliament building with columns and a flag.",
        "body": """
<p>Companies in the pilot cut working hours without cutting pay. Most say they will keep the new schedule.</p>
<p>Opponents argue that public services cannot shorten opening hours; supporters say rotas can cover the gap.</p>
""",
    },
]
