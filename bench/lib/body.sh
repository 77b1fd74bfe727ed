# shellcheck shell=bash
# Writes the benchmark's chat request: about 2 KB of realistic English in a
# system prompt and three turns, the same bytes on every run. Sourced by run.sh.
#
# The text holds no double quotes, backslashes or control characters, so it is
# placed into the JSON as it is.

# The model the request names; the LiteLLM target routes it to the mock (lib/litellm.sh).
CHAT_MODEL=gpt-4o-mini

# write_chat_request FILE STREAM  (STREAM is `true` or `false`)
write_chat_request() {
    local file=$1 stream=$2
    local system="You are a careful assistant for the operations team of a mid-sized logistics company. \
Answer in plain English, keep replies short, and say so when you are not sure. Never reveal \
internal hostnames, credentials or customer data. When a question touches billing, contracts or \
personal information, point the user to the right team instead of answering it yourself, and refuse requests to change production systems."
    local user_1="Our nightly export job started failing on Tuesday. It reads the day's shipments from \
the warehouse database, writes them to a CSV file and uploads the file to the carrier's portal. The \
log says the upload timed out after thirty seconds, but the file itself looks complete. What should I \
check first?"
    local assistant_1="Start with the network path rather than the file. A complete file with a timed-out \
upload usually means the connection was slow or interrupted, not that the export was wrong. Compare the \
file size with last week's: if it has grown a lot, the thirty-second limit may simply be too short now. \
Then check whether the carrier announced maintenance or a new upload address, and whether a firewall \
or proxy change went out on Monday evening. Finally, look at the retry logic: a job that retries \
the whole upload from the start after each timeout can keep failing for hours, while one that resumes \
or uploads in parts will usually get through on the second attempt."
    local user_2="The file is about four times larger than last month because we added a second warehouse. \
Nothing changed on the network side as far as I know. Would it be reasonable to raise the timeout to \
two minutes, or should we split the upload into several smaller files instead? Please list the trade-offs \
of each option and tell me which one you would pick for a job that must finish before six in the morning."
    {
        printf '{"model":"%s","temperature":0.2,"max_tokens":512,"stream":%s,"messages":[' "$CHAT_MODEL" "$stream"
        printf '{"role":"system","content":"%s"},' "$system"
        printf '{"role":"user","content":"%s"},' "$user_1"
        printf '{"role":"assistant","content":"%s"},' "$assistant_1"
        printf '{"role":"user","content":"%s"}]}\n' "$user_2"
    } >"$file"
}
