package tasks

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func mustTask(t *testing.T, name string) Task {
	t.Helper()
	task, ok := Lookup(name)
	if !ok {
		t.Fatalf("no task %s", name)
	}
	return task
}

func mustRead(t *testing.T, root, name string, s Split) Set {
	t.Helper()
	set, err := Read(root, mustTask(t, name), s)
	if err != nil {
		t.Fatal(err)
	}
	if !set.Present() {
		t.Fatalf("%s %s: missing %s", name, s, set.Missing)
	}
	return set
}

func TestReadGLUEColumns(t *testing.T) {
	root := filepath.Join("testdata", "root")
	cases := []struct {
		task  string
		split Split
		want  []Example
	}{
		{MNLI, Train, []Example{
			{ID: "0", TextA: "Conceptually cream skimming has two basic dimensions.", TextB: "Product and geography are what make cream skimming work. ", Label: 2},
			{ID: "1", TextA: "you know during the season", TextB: "You lose the things to the following level.", Label: 1},
			{ID: "2", TextA: "One of our number will carry out your instructions.", TextB: "Nobody will do it.", Label: 0},
		}},
		// dev has 16 columns: the label is the last (gold_label), not column 11.
		{MNLI, DevMatched, []Example{{ID: "9815", TextA: "The new rights are nice enough", TextB: "Everyone really likes the newest benefits", Label: 2}}},
		{MNLI, DevMismatched, []Example{{ID: "0", TextA: "Your contribution helped make it possible.", TextB: "Your contributions were of no help.", Label: 0}}},
		{MRPC, Train, []Example{
			{ID: "train-1", TextA: "Amrozi accused his brother.", TextB: `Referring to him as only "the witness", Amrozi accused his brother.`, Label: 1},
			{ID: "train-2", TextA: "Yucaipa owned Dominick's.", TextB: "Yucaipa bought Dominick's in 1995.", Label: 0},
		}},
		// CoLA has no header: the first line is an example (row 0).
		{CoLA, Train, []Example{
			{ID: "train-0", TextA: "Our friends won't buy this analysis.", Label: 1},
			{ID: "train-1", TextA: "They drank the pub.", Label: 0},
		}},
		{CoLA, Dev, []Example{{ID: "dev-0", TextA: "The sailors rode the breeze clear of the rocks.", Label: 1}}},
		{SST2, Train, []Example{
			{ID: "train-1", TextA: "hide new secretions from the parental units ", Label: 0},
			{ID: "train-2", TextA: "contains no wit , only labored gags ", Label: 0},
			{ID: "train-3", TextA: "that loves its characters ", Label: 1},
		}},
		{STSB, Train, []Example{
			{ID: "0", TextA: "A plane is taking off.", TextB: "An air plane is taking off.", Label: -1, Score: 5},
			{ID: "1", TextA: "A man is playing a large flute.", TextB: "A man is playing a flute.", Label: -1, Score: 3.8},
		}},
		// QQP's short row (two columns) is skipped, as run_classifier's IndexError.
		{QQP, Train, []Example{
			{ID: "133273", TextA: "How is the life of a math student?", TextB: "Which level of prepration is enough?", Label: 0},
			{ID: "360472", TextA: "How do I control my horny emotions?", TextB: "How do you control your horniness?", Label: 1},
		}},
		{QNLI, Dev, []Example{{ID: "0", TextA: "What is the name?", TextB: "The name is unknown to us.", Label: 1}}},
		{RTE, Train, []Example{{ID: "0", TextA: "No weapons were found.", TextB: "Weapons were found.", Label: 1}}},
		{WNLI, Dev, []Example{{ID: "0", TextA: "The cat sat.", TextB: "A cat sat.", Label: 1}}},
	}
	for _, c := range cases {
		set := mustRead(t, root, c.task, c.split)
		if !reflect.DeepEqual(set.Examples, c.want) {
			t.Errorf("%s %s:\n got  %+v\n want %+v", c.task, c.split, set.Examples, c.want)
		}
		if want := filepath.Join(root, "glue", c.task, string(c.split)+".tsv"); set.Path != want {
			t.Errorf("%s %s: path %s, want %s", c.task, c.split, set.Path, want)
		}
	}
}

func TestReadErrorsNameFileAndLine(t *testing.T) {
	bad := filepath.Join("testdata", "bad")
	cases := []struct {
		task  string
		split Split
		want  string
	}{
		{MRPC, Train, filepath.Join(bad, "glue", "MRPC", "train.tsv") + ":3: 4 columns, MRPC needs at least 5"},
		{STSB, Train, filepath.Join(bad, "glue", "STS-B", "train.tsv") + `:2: score "high" is not a number`},
		{CoLA, Train, filepath.Join(bad, "glue", "CoLA", "train.tsv") + `:2: label "2" is not one of [0 1]`},
		{SQuAD11, Dev, filepath.Join(bad, "squad", "dev-v1.1.json") + `: data[0].paragraphs[0].qas[0].answers[1].answer_start: 60 + 8 characters of "in Paris" runs outside the context (53 characters)`},
		{SQuAD11, Train, filepath.Join(bad, "squad", "train-v1.1.json") + ":3:30: malformed JSON"},
		{SQuAD20, Train, filepath.Join(bad, "squad", "train-v2.0.json") + ":16:29: data.paragraphs.qas.answers.answer_start: JSON string where int is expected"},
		{RACE, Dev, filepath.Join(bad, "RACE", "dev", "middle", "5.txt") + `: answers[0]: "E", want A, B, C or D`},
		{RACE, Train, filepath.Join(bad, "RACE", "train", "high", "6.txt") + ": options[0]: 3 options, want 4"},
	}
	for _, c := range cases {
		set, err := Read(bad, mustTask(t, c.task), c.split)
		if err == nil {
			t.Errorf("%s %s: no error (%d examples)", c.task, c.split, len(set.Examples))
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %s: error\n %v\nwant it to contain\n %s", c.task, c.split, err, c.want)
		}
		if len(set.Examples) != 0 {
			t.Errorf("%s %s: %d examples returned with an error", c.task, c.split, len(set.Examples))
		}
	}
}

func TestReadMissingIsNotAnError(t *testing.T) {
	root := t.TempDir()
	for _, c := range []struct {
		task  string
		split Split
		want  string
	}{
		{SST2, Dev, filepath.Join(root, "glue", "SST-2", "dev.tsv")},
		{SQuAD20, Dev, filepath.Join(root, "squad", "dev-v2.0.json")},
		{RACE, Test, filepath.Join(root, "RACE", "test")},
	} {
		set, err := Read(root, mustTask(t, c.task), c.split)
		if err != nil {
			t.Fatalf("%s: %v", c.task, err)
		}
		if set.Present() || set.Missing != c.want || len(set.Examples) != 0 {
			t.Errorf("%s: present %v, missing %q, want missing %q", c.task, set.Present(), set.Missing, c.want)
		}
	}
	if _, err := Read(root, mustTask(t, SST2), Test); err == nil {
		t.Error("GLUE test split (unlabelled) accepted")
	}
	if _, err := Read(root, mustTask(t, MNLI), Dev); err == nil {
		t.Error("MNLI split dev accepted (it has dev_matched and dev_mismatched)")
	}
}

func TestReadSQuAD(t *testing.T) {
	root := filepath.Join("testdata", "root")
	ctx := "The quick brown fox jumps over the lazy dog in Paris."
	got := mustRead(t, root, SQuAD11, Dev).Examples
	want := []Example{{ID: "d1", Question: "Which city?", Context: ctx, Label: -1,
		Answers: []Answer{{"Paris", 47}, {"in Paris", 44}, {"Paris.", 47}}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("v1 dev:\n got  %+v\n want %+v", got, want)
	}
	got = mustRead(t, root, SQuAD20, Train).Examples
	ctx2 := "Café au lait costs two euros."
	want = []Example{
		{ID: "a1", Question: "What costs two euros?", Context: ctx2, Label: -1, Answers: []Answer{{"Café au lait", 0}}},
		{ID: "a2", Question: "What costs three euros?", Context: ctx2, Label: -1, IsImpossible: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("v2 train:\n got  %+v\n want %+v", got, want)
	}
}

func TestReadRACE(t *testing.T) {
	root := filepath.Join("testdata", "root")
	got := mustRead(t, root, RACE, Train).Examples
	art := "Tom looked up. The sky was blue. He saw four dogs."
	want := []Example{
		{ID: "middle1.txt-0", Article: art, Question: "The sky is _ today.", Options: []string{"red", "blue", "green", "black"}, Label: 1, Subset: SubsetMiddle},
		{ID: "middle1.txt-1", Article: art, Question: "How many dogs did Tom see?", Options: []string{"one", "two", "three", "four"}, Label: 3, Subset: SubsetMiddle},
		{ID: "high2.txt-0", Article: "A fox jumped over the fence.", Question: "What jumped?", Options: []string{"a fox", "a cat", "a hen", "a cow"}, Label: 0, Subset: SubsetHigh},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("RACE train:\n got  %+v\n want %+v", got, want)
	}
	if got := mustRead(t, root, RACE, Test).Examples; len(got) != 1 || got[0].Subset != SubsetMiddle {
		t.Errorf("RACE test: %+v", got)
	}
}

func TestDiscover(t *testing.T) {
	root := filepath.Join("testdata", "root")
	present := map[string]bool{}
	for _, f := range Discover(root) {
		present[f.Task.Name] = f.Present()
		if !f.Present() && f.Missing == "" {
			t.Errorf("%s absent without a path", f.Task.Name)
		}
	}
	for _, name := range []string{MNLI, MRPC, CoLA, SST2, STSB, QQP, QNLI, RTE, WNLI, SQuAD11, SQuAD20, RACE} {
		if !present[name] {
			t.Errorf("%s not discovered in %s", name, root)
		}
	}
	for _, name := range []string{StandInReviews, StandInSpam, StandInCloze} {
		if present[name] {
			t.Errorf("stand-in %s discovered in the fixture root", name)
		}
	}
	for _, f := range Discover(t.TempDir()) {
		if f.Present() {
			t.Errorf("%s present in an empty root", f.Task.Name)
		}
	}
}

func TestCatalog(t *testing.T) {
	seen := map[string]bool{}
	for _, task := range All() {
		if seen[task.Name] {
			t.Errorf("duplicate task %s", task.Name)
		}
		seen[task.Name] = true
		if task.Metric != task.Metrics[0] {
			t.Errorf("%s: primary metric %s is not first in %v", task.Name, task.Metric, task.Metrics)
		}
		if task.StandIn != strings.HasPrefix(task.Name, "standin-") {
			t.Errorf("%s: StandIn %v", task.Name, task.StandIn)
		}
		if task.StandIn && task.PaperColumns != nil {
			t.Errorf("stand-in %s fills a paper column", task.Name)
		}
		if (task.Kind == MultipleChoice) != (task.Choices == 4) {
			t.Errorf("%s: kind %s with %d choices", task.Name, task.Kind, task.Choices)
		}
	}
	if len(seen) != 15 {
		t.Errorf("%d tasks, want 9 GLUE + 2 SQuAD + RACE + 3 stand-ins", len(seen))
	}
}
