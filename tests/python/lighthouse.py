"""The built-in text of the llama.cpp tests: a paragraph to repeat into a long prompt, and a question
whose answer is in it."""

PARAGRAPH = (
    "The lighthouse on Gull Point was kept for forty years by Marta Lind, who wrote the weather in a green "
    "ledger every morning at six. Ships from the northern ports passed the point in autumn, loaded with "
    "timber and salt fish, and Marta counted their lights from the gallery. When the storm of 1911 broke the "
    "great lens, she kept a paraffin lamp burning in the window for eleven nights until the glass came from "
    "the mainland. ")
QUESTION = "Who kept the lighthouse on Gull Point, and what did she write every morning?"
