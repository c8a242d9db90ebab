package textdiff

// usToUK pairs are whole words; both sides of a comparison are mapped to the UK form.
// The list favours words heard in general practice consultations.
var usToUK = [][2]string{
	// -our / -or
	{"color", "colour"}, {"colored", "coloured"}, {"behavior", "behaviour"}, {"behavioral", "behavioural"},
	{"favor", "favour"}, {"favorite", "favourite"}, {"honor", "honour"}, {"humor", "humour"},
	{"labor", "labour"}, {"neighbor", "neighbour"}, {"odor", "odour"}, {"tumor", "tumour"},
	{"vapor", "vapour"}, {"rigor", "rigour"},
	// -re / -er
	{"center", "centre"}, {"centered", "centred"}, {"liter", "litre"}, {"fiber", "fibre"},
	{"theater", "theatre"}, {"millimeter", "millimetre"}, {"centimeter", "centimetre"},
	// medical ae / oe
	{"anemia", "anaemia"}, {"anemic", "anaemic"}, {"anesthesia", "anaesthesia"}, {"anesthetic", "anaesthetic"},
	{"anesthetist", "anaesthetist"}, {"pediatric", "paediatric"}, {"pediatrics", "paediatrics"},
	{"pediatrician", "paediatrician"}, {"esophagus", "oesophagus"}, {"esophageal", "oesophageal"},
	{"esophagitis", "oesophagitis"}, {"hemoglobin", "haemoglobin"}, {"hemorrhage", "haemorrhage"},
	{"hemorrhoids", "haemorrhoids"}, {"hematology", "haematology"}, {"hematoma", "haematoma"},
	{"hematuria", "haematuria"}, {"hemophilia", "haemophilia"}, {"estrogen", "oestrogen"},
	{"diarrhea", "diarrhoea"}, {"edema", "oedema"}, {"gynecology", "gynaecology"},
	{"gynecologist", "gynaecologist"}, {"orthopedic", "orthopaedic"}, {"orthopedics", "orthopaedics"},
	{"leukemia", "leukaemia"}, {"cesarean", "caesarean"}, {"celiac", "coeliac"}, {"dyspnea", "dyspnoea"},
	{"apnea", "apnoea"}, {"ischemia", "ischaemia"}, {"ischemic", "ischaemic"},
	{"hypoglycemia", "hypoglycaemia"}, {"hyperglycemia", "hyperglycaemia"}, {"septicemia", "septicaemia"},
	{"hyperlipidemia", "hyperlipidaemia"}, {"fetus", "foetus"}, {"fetal", "foetal"},
	{"dyslipidemia", "dyslipidaemia"}, {"hypokalemia", "hypokalaemia"}, {"hyperkalemia", "hyperkalaemia"},
	{"hyponatremia", "hyponatraemia"}, {"glycemic", "glycaemic"}, {"anesthetize", "anaesthetise"}, {"anesthetized", "anaesthetised"},
	{"orthopedist", "orthopaedist"}, {"etiology", "aetiology"}, {"hemolysis", "haemolysis"},
	// -yze / -yse
	{"analyze", "analyse"}, {"analyzed", "analysed"}, {"paralyze", "paralyse"}, {"paralyzed", "paralysed"},
	{"catalyze", "catalyse"},
	// -ll- / -l-
	{"counseling", "counselling"}, {"counselor", "counsellor"}, {"traveled", "travelled"},
	{"traveling", "travelling"}, {"labeled", "labelled"}, {"labeling", "labelling"},
	{"canceled", "cancelled"}, {"canceling", "cancelling"}, {"enroll", "enrol"}, {"fulfill", "fulfil"},
	{"modeling", "modelling"}, {"dialed", "dialled"},
	// others
	{"gray", "grey"}, {"aging", "ageing"}, {"mold", "mould"}, {"aluminum", "aluminium"},
	{"defense", "defence"}, {"offense", "offence"}, {"pajamas", "pyjamas"}, {"mom", "mum"},
	{"program", "programme"}, {"plow", "plough"}, {"cozy", "cosy"},
	{"mustache", "moustache"}, {"ameba", "amoeba"}, {"maneuver", "manoeuvre"},
	{"sulfate", "sulphate"}, {"skeptical", "sceptical"}, {"artifact", "artefact"},
}

// izeStems take -ise in UK spelling (the UK -ize "Oxford" spelling exists, but GP notes
// overwhelmingly use -ise). Each yields -ize, -izes, -ized, -izing, -ization, -izations.
var izeStems = []string{
	"organ", "recogn", "real", "apolog", "minim", "maxim", "stabil", "hospital", "immun", "catheter",
	"character", "priorit", "summar", "emphas", "critic", "special", "optim", "final", "author",
	"util", "normal", "visual", "steril", "standard", "neutral", "metabol", "sensit", "desensit",
	"memor", "categor", "custom", "computer", "vocal", "symbol", "fertil", "pressur", "local",
	"general", "institutional", "tranquil", "cauter", "random",
}

// ukSpelling maps every listed US form (and generated inflections) to its UK form.
var ukSpelling = buildUKSpelling()

func buildUKSpelling() map[string]string {
	m := make(map[string]string, 4*len(usToUK)+6*len(izeStems))
	add := func(us, uk string) {
		if us == uk {
			return
		}
		m[us] = uk
	}
	for _, p := range usToUK {
		add(p[0], p[1])
		if p[0][len(p[0])-1] != 's' {
			add(p[0]+"s", p[1]+"s")
		}
	}
	for _, s := range izeStems {
		for _, suffix := range [][2]string{
			{"ize", "ise"}, {"izes", "ises"}, {"ized", "ised"}, {"izing", "ising"},
			{"ization", "isation"}, {"izations", "isations"},
		} {
			add(s+suffix[0], s+suffix[1])
		}
	}
	return m
}
