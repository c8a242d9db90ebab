package corpus

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"scribe/internal/domain"
)

// Utterance is one transcribed stretch of one speaker, with the original recording's timing.
type Utterance struct {
	Speaker domain.Speaker
	Start   float64 // seconds
	End     float64 // seconds
	Text    string  // cleaned: uncertain words kept, unintelligible markers removed
}

// Consultation is one PriMock57 consultation: both speakers' utterances merged in time order.
type Consultation struct {
	ID         string
	Duration   float64 // seconds: the longer of the two transcripts' time domains
	Utterances []Utterance
}

// ErrNotFound is wrapped when a consultation's transcripts do not exist.
var ErrNotFound = errors.New("consultation not found")

var consultationID = regexp.MustCompile(`^day\d+_consultation\d+$`)

// transcriptsDir accepts either the PriMock57 root or its transcripts folder.
func transcriptsDir(dir string) string {
	if st, err := os.Stat(filepath.Join(dir, "transcripts")); err == nil && st.IsDir() {
		return filepath.Join(dir, "transcripts")
	}
	return dir
}

// ListConsultations returns the ids (such as day1_consultation01) of the consultations
// in the corpus at dir that have both a doctor and a patient transcript, sorted.
func ListConsultations(dir string) ([]string, error) {
	tdir := transcriptsDir(dir)
	matches, err := filepath.Glob(filepath.Join(tdir, "*_doctor.TextGrid"))
	if err != nil {
		return nil, fmt.Errorf("list consultations in %s: %w", tdir, err)
	}
	var ids []string
	for _, m := range matches {
		id := strings.TrimSuffix(filepath.Base(m), "_doctor.TextGrid")
		if _, err := os.Stat(filepath.Join(tdir, id+"_patient.TextGrid")); err == nil {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		if _, err := os.Stat(tdir); err != nil {
			return nil, fmt.Errorf("list consultations: %w", err)
		}
		return nil, fmt.Errorf("list consultations: no *_doctor.TextGrid with a matching patient transcript in %s: %w", tdir, ErrNotFound)
	}
	sort.Strings(ids)
	return ids, nil
}

// transcriptPaths returns the doctor and patient TextGrid paths of a consultation.
func transcriptPaths(dir, id string) (doctor, patient string, err error) {
	if !consultationID.MatchString(id) {
		return "", "", fmt.Errorf("consultation id %q: want dayD_consultationNN: %w", id, ErrNotFound)
	}
	tdir := transcriptsDir(dir)
	return filepath.Join(tdir, id+"_doctor.TextGrid"), filepath.Join(tdir, id+"_patient.TextGrid"), nil
}

// LoadConsultation reads both transcripts of consultation id from the corpus at dir.
// Intervals with no words left after cleaning (silence, or only <UNIN/>) are left out:
// there is nothing in them to speak or to transcribe.
func LoadConsultation(dir, id string) (*Consultation, error) {
	doctorPath, patientPath, err := transcriptPaths(dir, id)
	if err != nil {
		return nil, err
	}
	c := &Consultation{ID: id}
	for _, side := range []struct {
		path    string
		speaker domain.Speaker
	}{{doctorPath, domain.SpeakerClinician}, {patientPath, domain.SpeakerPatient}} {
		tg, err := readTextGrid(side.path)
		if err != nil {
			return nil, fmt.Errorf("consultation %s: %w", id, err)
		}
		c.Duration = max(c.Duration, tg.XMax)
		for _, tier := range tg.Tiers {
			for _, iv := range tier.Intervals {
				text := CleanText(iv.Text)
				if text == "" {
					continue
				}
				c.Utterances = append(c.Utterances, Utterance{Speaker: side.speaker, Start: iv.XMin, End: iv.XMax, Text: text})
			}
		}
	}
	// Stable, so a doctor and patient utterance starting together keep doctor first.
	sort.SliceStable(c.Utterances, func(i, j int) bool { return c.Utterances[i].Start < c.Utterances[j].Start })
	return c, nil
}

func readTextGrid(path string) (*TextGrid, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %w", ErrNotFound, err)
		}
		return nil, err
	}
	defer f.Close()
	tg, err := ParseTextGrid(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return tg, nil
}

// Markup in PriMock57 transcripts: <UNSURE>words</UNSURE> wraps words the transcriber was
// unsure of (the words were still said, so they stay); <UNIN/> and <INAUDIBLE_SPEECH/>
// mark speech nobody could make out (nothing to speak, so they go). Any other tag is
// dropped too rather than read aloud.
var markupTag = regexp.MustCompile(`</?[A-Za-z_][A-Za-z0-9_]*\s*/?>`)

// CleanText removes PriMock57 markup from an utterance's text and normalises spaces.
func CleanText(s string) string {
	s = markupTag.ReplaceAllString(s, " ")
	return strings.Join(strings.Fields(s), " ")
}
