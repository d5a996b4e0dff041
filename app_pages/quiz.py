"""Quiz: name held-out cells, point at the deciding feature, then see the label and the model's map.

The rules live in ``hematovision.workflows.teaching`` (``Quiz``, ``pointing_score``); this
page only draws them. The cells come from ``samples/quiz/``: held out from training and
never shown in the Atlas. The answer and next buttons pass the question they were drawn
for, so a double click or a stale button from before a rerun cannot answer or skip the
wrong question. A click on the image reruns the page; its value lives under the image's
widget key (``quiz_point_key``) until the answer is submitted.
"""

import secrets

import pandas as pd
import streamlit as st
from streamlit_image_coordinates import streamlit_image_coordinates

from app import caches, state, widgets
from app.explanations import teaching_explanation_key
from app.page_paths import ATLAS_PAGE
from app.state import OPACITY, QUIZ, QUIZ_POINT_MODE, image_digest, quiz_choice_key, quiz_point_key
from app.texts import format_percent
from hematovision.explanation.explainers import Explanation
from hematovision.model.classifier import CLASS_NAMES, Prediction, display_name
from hematovision.workflows.teaching import (
    CELL_NOTES,
    POINT_RADIUS,
    SOURCE_NAMES,
    TOP_SHARE,
    Point,
    Quiz,
    QuizCell,
    list_quiz_cells,
    mark_point,
)

state.init_state()

NEAR = (f"the circle around your click, whose radius is {POINT_RADIUS:.0%} of the image's "
        "width")


def fresh_seed(avoid: int | None = None) -> int:
    """A new random draw, never the one just played."""
    seed = secrets.randbelow(1_000_000)
    return seed + 1 if seed == avoid else seed


def clicked_point(quiz: Quiz) -> Point | None:
    """The student's last click on the current image, as fractions of its shown size."""
    click = st.session_state.get(quiz_point_key(quiz))
    try:
        x, y = click["x"] / click["width"], click["y"] / click["height"]
    except (TypeError, KeyError, ZeroDivisionError):
        return None  # no click yet (None), or a value this page did not expect
    return min(max(float(x), 0.0), 1.0), min(max(float(y), 0.0), 1.0)


def submit_answer(position: int) -> None:
    quiz = st.session_state.get(QUIZ)
    if quiz is None or quiz.position != position or not quiz.awaiting_answer:
        return  # a second click on a question that is already answered
    choice = st.session_state.get(quiz_choice_key(quiz))
    point = clicked_point(quiz)
    if choice is None or (quiz.point_and_check and point is None):
        return  # the page says what is missing below the form
    quiz.answer(choice, point if quiz.point_and_check else None)


def next_question(position: int) -> None:
    quiz = st.session_state.get(QUIZ)
    if quiz is None or quiz.position != position or quiz.awaiting_answer or quiz.finished:
        return  # a second click after the quiz has already moved on
    quiz.next_question()


def restart() -> None:
    quiz = st.session_state.get(QUIZ)
    if quiz is not None:
        quiz.restart(fresh_seed(avoid=quiz.seed))


def set_point_mode() -> None:
    quiz = st.session_state.get(QUIZ)
    if quiz is not None:
        quiz.point_and_check = bool(st.session_state[QUIZ_POINT_MODE])


def model_prediction(cell: QuizCell) -> Prediction:
    """The model's answer for a cell's main (most strongly stained) white cell, cached."""
    data = cell.read_bytes()
    return caches.predict_cells(image_digest(data), data)[0]


def model_map(cell: QuizCell, prediction: Prediction) -> Explanation:
    """The Grad-CAM map of the evidence for the cell's true class on the model's crop, cached.
    The student is asked where the deciding feature is, so the click is scored against the
    evidence for the right answer, even when the model itself answers wrongly."""
    key = teaching_explanation_key(image_digest(cell.read_bytes()), cell.class_name)
    return caches.explain_crop(key, prediction.model_input)


def a_or_an(name: str) -> str:
    return f"{'an' if name[0].lower() in 'aeiou' else 'a'} {name.lower()}"


def source_caption(cell: QuizCell) -> str:
    return (f"{SOURCE_NAMES[cell.source]}: `{cell.original_file}`. Licence: {cell.licence}.")


st.title("Quiz")
st.markdown(
    "Name the white cell in each image, and click where you see what decides it (the "
    "nucleus lobes, the granules). Use the red cells (pink discs, 7–8 µm) as a ruler. "
    "After each answer you see the data set's label, the model's answer and the Grad-CAM "
    f"map of the evidence for the true class, with the share of the map's strongest {TOP_SHARE:.0%} that lies within {NEAR}. "
    "The cells are new to you and to the model: they come from held-out test splits, "
    "never trained on and never shown in the Atlas. Questions lean toward the classes you "
    "miss."
)

quiz = st.session_state.get(QUIZ)
if not isinstance(quiz, Quiz):
    cells = list_quiz_cells()
    if not cells:
        st.info("No quiz images are installed, so there is nothing to quiz on.",
                icon=":material/info:")
        st.stop()
    quiz = Quiz(cells, seed=fresh_seed())
    st.session_state[QUIZ] = quiz

# ---------------------------------------------------------------------------
# Progress and score
# ---------------------------------------------------------------------------
asked, right, pointing, controls = st.columns([1, 1, 1, 1])
asked.metric("Question", f"{quiz.position + 1} of {quiz.total}")
right.metric("Score", f"{quiz.score} / {quiz.answered}")
pointing_metric = pointing.empty()  # filled at the end, once this answer's click is scored
controls.button("Restart", key="quiz_restart", on_click=restart, icon=":material/restart_alt:",
                help="Start again with new questions, with the score back to zero.")
st.progress(quiz.answered / quiz.total)

# ---------------------------------------------------------------------------
# The question, or the feedback on the answer just given
# ---------------------------------------------------------------------------
question = quiz.current
photo, side = st.columns([1, 1.4], gap="large")
if quiz.awaiting_answer:
    side.toggle("Point and check", value=quiz.point_and_check, key=QUIZ_POINT_MODE,
                on_change=set_point_mode,
                help="Click on the image where you see the deciding feature; your click is "
                "compared with the model's map after you answer.")
    with photo:
        if quiz.point_and_check:
            try:
                crop = model_prediction(question).model_input
            except Exception as exc:  # without the model's crop there is nothing to point at
                st.error(f"The model could not frame this cell: {exc}. Switch off point and "
                         "check to answer by class only.", icon=":material/error:")
            else:
                point = clicked_point(quiz)
                streamlit_image_coordinates(crop if point is None else mark_point(crop, point),
                                            key=quiz_point_key(quiz), width="stretch",
                                            cursor="crosshair")
                st.caption(f"Question {quiz.position + 1}: click the deciding feature. "
                           f"{'Click again to move your mark.' if point else ''} What counts is "
                           f"{NEAR}.")
        else:
            st.image(question.read_bytes(), caption=f"Question {quiz.position + 1}",
                     width="stretch")
    with side:
        with st.form("quiz_answer", border=False):
            st.radio("Which white cell is this?", CLASS_NAMES, index=None, format_func=display_name,
                     key=quiz_choice_key(quiz), horizontal=True)
            submitted = st.form_submit_button("Submit answer", type="primary",
                                              on_click=submit_answer, args=(quiz.position,))
        if submitted and quiz.awaiting_answer:
            if st.session_state.get(quiz_choice_key(quiz)) is None:
                st.warning("Pick a cell type first.", icon=":material/warning:")
            else:
                st.warning("Click on the image where you see the deciding feature first.",
                           icon=":material/ads_click:")
else:
    answer = quiz.last_answer
    true_name, chosen_name = display_name(answer.true_class), display_name(answer.chosen)
    photo.image(question.read_bytes(), caption=f"Question {quiz.position + 1}: {question.title}",
                width="stretch")
    photo.caption(source_caption(question))
    with side:
        if answer.correct:
            st.success(f"**Right.** This is {a_or_an(true_name)}.", icon=":material/check_circle:")
        else:
            st.error(f"**Not quite.** You said {chosen_name}; this is {a_or_an(true_name)}.",
                     icon=":material/cancel:")
        try:
            with st.spinner("Asking the model…"):
                prediction = model_prediction(question)
                explanation = model_map(question, prediction)
        except Exception as exc:  # the quiz goes on even if the model cannot answer
            st.error(f"The model could not look at this image: {exc}", icon=":material/error:")
        else:
            st.markdown(
                f"**True class (data-set label):** {true_name}  \n"
                f"**Model's prediction:** {display_name(prediction.label)}, "
                f"{format_percent(prediction.confidence)} calibrated confidence"
            )
            widgets.status_message(prediction)
            heat = widgets.overlay_image(prediction.model_input, explanation,
                                         float(st.session_state[OPACITY]), "positive")
            result = quiz.check_pointing(explanation.attribution)
            if answer.point is not None:
                heat = mark_point(heat, answer.point)
            st.image(heat, width="stretch",
                     caption=f"Grad-CAM for {true_name}, the true class: red is where the model sees the "
                     "strongest evidence for it" + ("; the circle is your click" if answer.point else ""))
            if result is not None and result.score is None:
                st.info("The map is flat, so there is no strongest part to point at.",
                        icon=":material/info:")
            elif result is not None:
                st.metric("Your click", format_percent(result.score, 0),
                          help=f"Share of the map's top {TOP_SHARE:.0%} within {NEAR}.")
                st.markdown(
                    f"**{format_percent(result.score, 0)}** of the map's strongest "
                    f"{TOP_SHARE:.0%} lies within {NEAR}. The best click on this map would "
                    f"reach {format_percent(result.best, 0)}."
                )
        notes = CELL_NOTES[answer.true_class]
        with st.expander(f"What marks {a_or_an(true_name)}", expanded=not answer.correct):
            st.markdown(notes.looks)
            st.markdown(f"**Easily confused with:** {notes.look_alikes}")
        if not quiz.finished:
            st.button("Next question", key="quiz_next", type="primary", on_click=next_question,
                      args=(quiz.position,), icon=":material/arrow_forward:")

# ---------------------------------------------------------------------------
# This session's answers, and where the next questions lean
# ---------------------------------------------------------------------------
labels = [display_name(name) for name in CLASS_NAMES]
pointed = [a.pointing.score for a in quiz.answers if a.pointing and a.pointing.score is not None]
mean_pointing = format_percent(sum(pointed) / len(pointed), 0) if pointed else "–"
pointing_metric.metric("Pointing", mean_pointing,
                       help=f"Average share of the map's top {TOP_SHARE:.0%} within {NEAR}.")
if quiz.answered:
    st.subheader("Your progress")
    per_class, points = quiz.per_class(), quiz.pointing_by_class()
    chances = quiz.next_class_chances()
    st.dataframe(pd.DataFrame(
        {"Right": [per_class[name][0] for name in CLASS_NAMES],
         "Asked": [per_class[name][1] for name in CLASS_NAMES],
         "Share right": [format_percent(right / asked, 0) if asked else "–"
                         for right, asked in per_class.values()],
         "Pointing": [format_percent(points[name][0], 0) for name in CLASS_NAMES],
         "Chance next": [format_percent(chances[name], 0) for name in CLASS_NAMES]},
        index=pd.Index(labels, name="Cell type"),
    ))
    weak = quiz.weak_classes()
    if weak:
        st.markdown("**Weak classes so far:** " + ", ".join(
            f"{display_name(name)} ({per_class[name][0]} of {per_class[name][1]} right)"
            for name in weak) + ". The next questions come from them more often.")
    else:
        st.markdown("**No weak class so far:** every answer was right.")
    st.caption("Pointing: the average share of the map's strongest part near your clicks. "
               "Chance next: how likely the next question is of each class; a class's weight "
               "is (wrong + 1) / (asked + 2).")
    st.markdown("**Your answers against the true class**")
    st.dataframe(pd.DataFrame(quiz.confusion(), index=pd.Index(labels, name="True class"),
                              columns=labels))
    st.caption("Rows: the true class (data-set label). Columns: the class you chose. "
               "The diagonal holds your right answers.")

if quiz.finished:
    st.subheader("Summary")
    share = format_percent(quiz.score / quiz.total, 0)
    summary = f"You named **{quiz.score} of {quiz.total}** cells right ({share})."
    if pointed:
        summary += (f" Your clicks held on average **{mean_pointing}** of the model's strongest "
                    "evidence.")
    st.markdown(summary)
    try:
        model_right = sum(model_prediction(cell).label == cell.class_name
                          for cell in quiz.questions)
        st.markdown(f"On the same images the model named **{model_right} of {quiz.total}** right.")
    except Exception as exc:
        st.error(f"The model's score could not be worked out: {exc}", icon=":material/error:")
    if quiz.mistakes:
        st.markdown("To look at again:\n" + "\n".join(
            f"- {mistake.cell.title} (`{mistake.cell.original_file}`): you said "
            f"{display_name(mistake.chosen)}"
            for mistake in quiz.mistakes
        ))
    st.page_link(ATLAS_PAGE, label="Review the cells in the atlas",
                 icon=":material/menu_book:")

st.caption(
    "Quiz images: Kaggle Blood Cell Images TEST_SIMPLE, from the BCCD Dataset (MIT License, "
    "Copyright (c) 2017 shenggan), and the PBC dataset's test split: A. Acevedo et al., Data "
    "in Brief 30 (2020) 105474, doi 10.1016/j.dib.2020.105474, CC BY 4.0. Unchanged copies; "
    "samples/quiz/manifest.csv lists each file's origin."
)
widgets.decision_support_note()
