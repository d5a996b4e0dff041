"""Quiz: name the cell in each built-in sample, then see its label, the model's answer and why.

The rules live in ``hematovision.workflows.teaching.Quiz``; this page only draws it. The answer and
next buttons pass the question they were drawn for, so a double click or a stale button
from before a rerun cannot answer or skip the wrong question.
"""

import secrets

import pandas as pd
import streamlit as st

from app import caches, state, widgets
from app.explanations import teaching_explanation_key
from app.page_paths import ATLAS_PAGE
from app.state import OPACITY, QUIZ, image_digest, quiz_choice_key
from app.texts import format_percent
from hematovision.explanation.explainers import Explanation
from hematovision.model.classifier import CLASS_NAMES, Prediction, display_name
from hematovision.workflows.samples import Sample, list_samples
from hematovision.workflows.teaching import CELL_NOTES, Quiz

state.init_state()


def fresh_seed(avoid: int | None = None) -> int:
    """A new random question order, never the one just played."""
    seed = secrets.randbelow(1_000_000)
    return seed + 1 if seed == avoid else seed


def submit_answer(position: int) -> None:
    quiz = st.session_state.get(QUIZ)
    if quiz is None or quiz.position != position or not quiz.awaiting_answer:
        return  # a second click on a question that is already answered
    choice = st.session_state.get(quiz_choice_key(quiz))
    if choice is not None:  # nothing picked: the page says so below the form
        quiz.answer(choice)


def next_question(position: int) -> None:
    quiz = st.session_state.get(QUIZ)
    if quiz is None or quiz.position != position or quiz.awaiting_answer or quiz.finished:
        return  # a second click after the quiz has already moved on
    quiz.next_question()


def restart() -> None:
    quiz = st.session_state.get(QUIZ)
    if quiz is not None:
        quiz.restart(fresh_seed(avoid=quiz.seed))


def model_prediction(sample: Sample) -> Prediction:
    """The model's answer for a sample's main (most strongly stained) white cell, cached."""
    data = sample.read_bytes()
    return caches.predict_cells(image_digest(data), data)[0]


def model_view(sample: Sample) -> tuple[Prediction, Explanation]:
    """(the model's prediction, its Grad-CAM map) for a sample's main cell; both cached."""
    prediction = model_prediction(sample)
    key = teaching_explanation_key(image_digest(sample.read_bytes()))
    return prediction, caches.explain_crop(key, prediction.model_input)


def a_or_an(name: str) -> str:
    return f"{'an' if name[0].lower() in 'aeiou' else 'a'} {name.lower()}"


st.title("Quiz")
st.markdown(
    "Name the white cell in each photo. Use the red cells (pink discs, 7–8 µm) as a ruler, "
    "then look at the nucleus, the cytoplasm and the granules. After each answer you see the "
    "data set's label, what the model said and where its evidence sits. The Atlas page lists "
    "what to look for."
)

quiz = st.session_state.get(QUIZ)
if not isinstance(quiz, Quiz):
    samples = list_samples()
    if not samples:
        st.info("No sample images are installed, so there is nothing to quiz on.",
                icon=":material/info:")
        st.stop()
    quiz = Quiz(samples, seed=fresh_seed())
    st.session_state[QUIZ] = quiz

# ---------------------------------------------------------------------------
# Progress and score
# ---------------------------------------------------------------------------
asked, right, controls = st.columns([1, 1, 1])
asked.metric("Question", f"{quiz.position + 1} of {quiz.total}")
right.metric("Score", f"{quiz.score} / {quiz.answered}")
controls.button("Restart", key="quiz_restart", on_click=restart, icon=":material/restart_alt:",
                help="Start again in a new order, with the score back to zero.")
st.progress(quiz.answered / quiz.total)

# ---------------------------------------------------------------------------
# The question, or the feedback on the answer just given
# ---------------------------------------------------------------------------
question = quiz.current
photo, side = st.columns([1, 1.4], gap="large")
if quiz.awaiting_answer:
    photo.image(question.read_bytes(), caption=f"Question {quiz.position + 1}", width="stretch")
    with side:
        with st.form("quiz_answer", border=False):
            st.radio("Which white cell is this?", CLASS_NAMES, index=None, format_func=display_name,
                     key=quiz_choice_key(quiz), horizontal=True)
            submitted = st.form_submit_button("Submit answer", type="primary",
                                              on_click=submit_answer, args=(quiz.position,))
        if submitted and quiz.awaiting_answer:
            st.warning("Pick a cell type first.", icon=":material/warning:")
else:
    answer = quiz.last_answer
    true_name, chosen_name = display_name(answer.true_class), display_name(answer.chosen)
    photo.image(question.read_bytes(), caption=f"Question {quiz.position + 1}: {question.title}",
                width="stretch")
    with side:
        if answer.correct:
            st.success(f"**Right.** This is {a_or_an(true_name)}.", icon=":material/check_circle:")
        else:
            st.error(f"**Not quite.** You said {chosen_name}; this is {a_or_an(true_name)}.",
                     icon=":material/cancel:")
        try:
            with st.spinner("Asking the model…"):
                prediction, explanation = model_view(question)
        except Exception as exc:  # the quiz goes on even if the model cannot answer
            st.error(f"The model could not look at this image: {exc}", icon=":material/error:")
        else:
            st.markdown(
                f"**True class (data-set label):** {true_name}  \n"
                f"**Model's prediction:** {display_name(prediction.label)}, "
                f"{format_percent(prediction.confidence)} calibrated confidence"
            )
            widgets.status_message(prediction)
            crop, heat = st.columns(2, gap="small")
            crop.image(prediction.model_input, caption="The crop the model saw", width="stretch")
            heat.image(widgets.overlay_image(prediction.model_input, explanation,
                                             float(st.session_state[OPACITY]), "positive"),
                       caption=f"Grad-CAM for {display_name(prediction.label)}: "
                       "red is the strongest evidence",
                       width="stretch")
        notes = CELL_NOTES[answer.true_class]
        with st.expander(f"What marks {a_or_an(true_name)}", expanded=not answer.correct):
            st.markdown(notes.looks)
            st.markdown(f"**Easily confused with:** {notes.look_alikes}")
        if not quiz.finished:
            st.button("Next question", key="quiz_next", type="primary", on_click=next_question,
                      args=(quiz.position,), icon=":material/arrow_forward:")

# ---------------------------------------------------------------------------
# This session's answers
# ---------------------------------------------------------------------------
labels = [display_name(name) for name in CLASS_NAMES]
if quiz.answered:
    st.subheader("Your answers so far")
    st.dataframe(pd.DataFrame(quiz.confusion(), index=pd.Index(labels, name="True class"),
                              columns=labels))
    st.caption("Rows: the true class (data-set label). Columns: the class you chose. "
               "The diagonal holds your right answers.")

if quiz.finished:
    st.subheader("Summary")
    share = format_percent(quiz.score / quiz.total, 0)
    st.markdown(f"You named **{quiz.score} of {quiz.total}** cells right ({share}).")
    per_class = quiz.per_class()
    st.dataframe(pd.DataFrame(
        {"Right": [per_class[name][0] for name in CLASS_NAMES],
         "Asked": [per_class[name][1] for name in CLASS_NAMES]},
        index=pd.Index(labels, name="Cell type"),
    ))
    try:
        model_right = sum(model_prediction(sample).label == sample.class_name
                          for sample in quiz.questions)
        st.markdown(f"On the same images the model named **{model_right} of {quiz.total}** right.")
    except Exception as exc:
        st.error(f"The model's score could not be worked out: {exc}", icon=":material/error:")
    if quiz.mistakes:
        st.markdown("To look at again:\n" + "\n".join(
            f"- {mistake.sample.title}: you said {display_name(mistake.chosen)}"
            for mistake in quiz.mistakes
        ))
    st.page_link(ATLAS_PAGE, label="Review the cells in the atlas",
                 icon=":material/menu_book:")

widgets.decision_support_note()
