"""The hf:/path model route end to end, with a tiny randomly initialised model built here."""

from __future__ import annotations

import pytest

from matloop.agents.llm import (
    LLMClient,
    LLMConfigError,
    StructuredOutputError,
    make_chat_model,
    parse_model_string,
)
from matloop.errors import MatloopError
from matloop.schemas import Objective

CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>{% endif %}")


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-llm")
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>", "</s>",
                                                                  "<pad>"])
    corpus = ["the band gap of GaN is 3.4 eV", '{"query": "stable oxides"}',
              "Li-Fe-O system with olivine structure"] * 20
    tok.train_from_iterator(corpus, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>", pad_token="<pad>")
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(folder)
    config = LlamaConfig(vocab_size=fast.vocab_size, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                         max_position_embeddings=4096, bos_token_id=fast.bos_token_id,
                         eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id)
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


def test_local_model_loads_chats_and_counts_tokens(tiny_model_dir) -> None:
    from langchain_core.messages import HumanMessage, SystemMessage

    spec = parse_model_string(f"hf:{tiny_model_dir}")
    assert spec is not None and spec.provider == "hf"
    model = make_chat_model(spec, max_new_tokens=12)
    reply = model.invoke([SystemMessage(content="You are terse."),
                          HumanMessage(content="band gap of GaN?")])
    assert isinstance(reply.content, str)
    assert reply.usage_metadata["output_tokens"] <= 12
    assert reply.usage_metadata["input_tokens"] > 5


def test_garbage_from_a_local_model_is_a_reported_failure(tiny_model_dir) -> None:
    model = make_chat_model(parse_model_string(f"hf:{tiny_model_dir}"), max_new_tokens=8)
    seen = []
    client = LLMClient(model, f"hf:{tiny_model_dir.name}", max_retries=1, on_call=seen.append)
    with pytest.raises(StructuredOutputError) as info:
        client.structured(Objective, "Answer in JSON.", "stable Li-Fe-O oxides",
                          role="scientist")
    assert "2 attempts" in str(info.value)
    assert len(seen) == 2 and all(r.ok for r in seen)


def test_bad_model_settings_explain_themselves(tmp_path) -> None:
    with pytest.raises(LLMConfigError, match="no provider"):
        parse_model_string("gpt-4o")
    assert parse_model_string("none") is None
    with pytest.raises(MatloopError, match="config.json"):
        make_chat_model(parse_model_string(f"hf:{tmp_path}"))
