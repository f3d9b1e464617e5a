package tasks

// Task names. The GLUE names are the folder names of the GLUE download.
const (
	MNLI    = "MNLI"
	MRPC    = "MRPC"
	CoLA    = "CoLA"
	SST2    = "SST-2"
	STSB    = "STS-B"
	QQP     = "QQP"
	QNLI    = "QNLI"
	RTE     = "RTE"
	WNLI    = "WNLI"
	SQuAD11 = "SQuAD-1.1"
	SQuAD20 = "SQuAD-2.0"
	RACE    = "RACE"

	// Stand-ins (BuildStandIns writes them under the data root).
	StandInReviews = "standin-reviews" // SST-2 layout: Amazon Fine Food reviews, 5 stars or not
	StandInSpam    = "standin-spam"    // SST-2 layout: SpamAssassin mails, spam or ham
	StandInCloze   = "standin-cloze"   // RACE layout: which of 4 sentences continues a held-out passage
)

// Formats that are not a GLUE task name.
const (
	FormatSQuAD = "SQuAD"
	FormatRACE  = "RACE"
)

var binaryLabels = []string{"0", "1"}
var nliTwo = []string{"entailment", "not_entailment"}
var options = []string{"A", "B", "C", "D"}

func glue(name string, labels []string, metrics []string, paper map[string]string) Task {
	kind := Classification
	if labels == nil {
		kind = Regression
	}
	t := Task{Name: name, Kind: kind, Labels: labels, Metric: metrics[0], Metrics: metrics,
		PaperColumns: paper, Dir: "glue/" + name, Format: name, TrainSplit: Train, EvalSplits: []Split{Dev}, Choices: 1}
	if name == MNLI {
		t.EvalSplits = []Split{DevMatched, DevMismatched}
	}
	return t
}

// catalog holds every task, official ones first, in a fixed order.
var catalog = []Task{
	glue(MNLI, []string{"contradiction", "entailment", "neutral"}, []string{MetricAccuracy}, map[string]string{MetricAccuracy: "mnli"}),
	glue(MRPC, binaryLabels, []string{MetricF1, MetricAccuracy}, nil),
	glue(CoLA, binaryLabels, []string{MetricMCC, MetricAccuracy}, nil),
	glue(SST2, binaryLabels, []string{MetricAccuracy}, map[string]string{MetricAccuracy: "sst2"}),
	glue(STSB, nil, []string{MetricPearson, MetricSpearman}, nil),
	glue(QQP, binaryLabels, []string{MetricF1, MetricAccuracy}, nil),
	glue(QNLI, nliTwo, []string{MetricAccuracy}, nil),
	glue(RTE, nliTwo, []string{MetricAccuracy}, nil),
	glue(WNLI, binaryLabels, []string{MetricAccuracy}, nil),
	{Name: SQuAD11, Kind: Span, Metric: MetricF1, Metrics: []string{MetricF1, MetricEM},
		PaperColumns: map[string]string{MetricF1: "squad11_f1", MetricEM: "squad11_em"},
		Dir:          "squad", Format: FormatSQuAD, TrainSplit: Train, EvalSplits: []Split{Dev}, Choices: 1, SQuADVersion: 1},
	{Name: SQuAD20, Kind: Span, Metric: MetricF1, Metrics: []string{MetricF1, MetricEM, MetricHasAnsEM, MetricHasAnsF1, MetricNoAnsAcc},
		PaperColumns: map[string]string{MetricF1: "squad20_f1", MetricEM: "squad20_em"},
		Dir:          "squad", Format: FormatSQuAD, TrainSplit: Train, EvalSplits: []Split{Dev}, Choices: 1, SQuADVersion: 2},
	{Name: RACE, Kind: MultipleChoice, Labels: options, Metric: MetricAccuracy,
		Metrics:      []string{MetricAccuracy, MetricAccMid, MetricAccHigh},
		PaperColumns: map[string]string{MetricAccuracy: "race"},
		Dir:          "RACE", Format: FormatRACE, TrainSplit: Train, EvalSplits: []Split{Dev, Test}, Choices: 4},

	{Name: StandInReviews, Kind: Classification, Labels: binaryLabels, Metric: MetricAccuracy,
		Metrics: []string{MetricAccuracy, MetricF1}, StandIn: true,
		Dir: "standin/reviews", Format: SST2, TrainSplit: Train, EvalSplits: []Split{Dev}, Choices: 1},
	{Name: StandInSpam, Kind: Classification, Labels: binaryLabels, Metric: MetricAccuracy,
		Metrics: []string{MetricAccuracy, MetricF1}, StandIn: true,
		Dir: "standin/spam", Format: SST2, TrainSplit: Train, EvalSplits: []Split{Dev}, Choices: 1},
	{Name: StandInCloze, Kind: MultipleChoice, Labels: options, Metric: MetricAccuracy,
		Metrics: []string{MetricAccuracy}, StandIn: true,
		Dir: "standin/cloze", Format: FormatRACE, TrainSplit: Train, EvalSplits: []Split{Dev}, Choices: 4},
}

// All returns every known task: the nine GLUE tasks, SQuAD 1.1 and 2.0,
// RACE, then the stand-ins. The slice is a copy.
func All() []Task {
	out := make([]Task, len(catalog))
	copy(out, catalog)
	return out
}

// Lookup returns the task with the given name.
func Lookup(name string) (Task, bool) {
	for _, t := range catalog {
		if t.Name == name {
			return t, true
		}
	}
	return Task{}, false
}
