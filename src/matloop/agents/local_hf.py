"""A local Hugging Face causal language model as a LangChain chat model (in-process, CPU).

``hf:/path/to/model`` loads the model directory with transformers (no hub access: the path
must hold the weights, config and tokenizer, and the tokenizer needs a chat template). The
model does not call tools natively; structured answers are asked for as JSON in the text.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict, PrivateAttr

from matloop.errors import MatloopError


class LocalHFChatModel(BaseChatModel):
    """Chat with a local transformers model directory."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model_path: str
    temperature: float = 0.0
    max_new_tokens: int = 512
    _model: Any = PrivateAttr(default=None)
    _tokenizer: Any = PrivateAttr(default=None)

    @classmethod
    def from_path(cls, path: str, *, temperature: float = 0.0, max_new_tokens: int = 512,
                  **_: Any) -> LocalHFChatModel:
        """Load a model directory once.

        Raises:
            MatloopError: The folder is missing, incomplete, or has no chat template.
        """
        folder = Path(path).expanduser()
        if not (folder / "config.json").is_file():
            raise MatloopError(f"hf:{path}: no model directory (config.json missing)",
                               hint="pass the folder that holds config.json, the weights and "
                                    "the tokenizer files")
        import os

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True)
        except Exception as exc:
            raise MatloopError(f"hf:{path}: cannot load the model ({type(exc).__name__}: {exc})",
                               hint="check that the folder is a complete transformers model "
                                    "directory") from exc
        if not getattr(tokenizer, "chat_template", None):
            raise MatloopError(f"hf:{path}: the tokenizer has no chat template",
                               hint="use an instruction-tuned model whose tokenizer_config.json "
                                    "defines chat_template")
        model.eval()
        chat = cls(model_path=str(folder), temperature=temperature, max_new_tokens=max_new_tokens)
        chat._model, chat._tokenizer = model, tokenizer
        return chat

    @property
    def _llm_type(self) -> str:
        return "matloop-local-hf"

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: Any = None, **kwargs: Any) -> ChatResult:
        import torch

        role_of = {"human": "user", "ai": "assistant", "system": "system", "tool": "user"}
        chat = [{"role": role_of.get(m.type, "user"),
                 "content": m.content if isinstance(m.content, str) else str(m.content)}
                for m in messages]
        tok = self._tokenizer
        inputs = tok.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt",
                                         return_dict=True)
        start = time.perf_counter()
        with torch.no_grad():
            output = self._model.generate(
                **inputs, max_new_tokens=self.max_new_tokens,
                do_sample=self.temperature > 0,
                temperature=self.temperature if self.temperature > 0 else None,
                pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
            )
        new_tokens = output[0, inputs["input_ids"].shape[1]:]
        text = tok.decode(new_tokens, skip_special_tokens=True)
        if stop:
            for s in stop:
                text = text.split(s)[0]
        usage = {"input_tokens": int(inputs["input_ids"].shape[1]),
                 "output_tokens": int(new_tokens.shape[0]),
                 "total_tokens": int(output.shape[1])}
        message = AIMessage(content=text, usage_metadata=usage,
                            response_metadata={"latency_s": time.perf_counter() - start})
        return ChatResult(generations=[ChatGeneration(message=message)])
