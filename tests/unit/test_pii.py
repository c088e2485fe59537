"""PII rules, redaction, reporting, pseudonymisation and the shipped name model."""

from __future__ import annotations

import subprocess
import sys

import pytest
from harvey.pii import (
    PiiMatch,
    Pseudonymizer,
    cnpj_valid,
    cpf_valid,
    detect,
    redact,
    report,
)

# Synthetic numbers with valid check digits (never real people's).
CPF = "529.982.247-25"
CNPJ = "11.222.333/0001-81"


def found(text: str, **kw) -> list[tuple[str, str]]:
    return [(m.type, text[m.start : m.end]) for m in detect(text, **kw)]


def test_check_digit_algorithms():
    assert cpf_valid("52998224725") and cpf_valid("39053344705")
    assert not cpf_valid("52998224726") and not cpf_valid("11111111111") and not cpf_valid("5299822472")
    assert cnpj_valid("11222333000181") and cnpj_valid("98765432000198")
    assert not cnpj_valid("11222333000182") and not cnpj_valid("00000000000000")


@pytest.mark.parametrize(
    "value",
    [
        "529.982.247-25",
        "52998224725",
        "529 982 247 25",
        "529982247-25",
        "529.982.247 - 25",
        "529-982-247-25",
        "529.982.247/25",
    ],
)
def test_cpf_in_any_formatting(value):
    assert found(f"CPF nº {value}, residente") == [("CPF", value)]


@pytest.mark.parametrize(
    "value",
    [
        "11.222.333/0001-81",
        "11222333000181",
        "11 222 333 0001 81",
        "11.222.333 / 0001 - 81",
        "112223330001-81",
    ],
)
def test_cnpj_in_any_formatting(value):
    assert found(f"inscrita no CNPJ {value}.") == [("CNPJ", value)]


@pytest.mark.parametrize("value", ["529.982.247-26", "52998224724", "111.111.111-11", "11.222.333/0001-82"])
def test_invalid_check_digits_are_not_flagged(value):
    assert detect(f"CPF/CNPJ {value}") == []


@pytest.mark.parametrize(
    "text",
    [
        "Processo nº 0012843-03.2015.8.07.0001, 3ª Turma Cível",
        "autos 5001234-56.2020.4.03.6100 e 0700123-45.2019.8.07.0016",
        "00128430320158070001",
        "Dr. Fulano, OAB/SP 123.456, e OAB/DF nº 12.345",
        "nos termos do art. 178, II, do CPC e do art. 1.015 do Código Civil",
        "julgado em 12/03/2015, publicado em 03.10.2013",
        "Lei nº 8.443/1992, Decreto 2.200-2/2001, R$ 1.775.000,00",
        "TC 021.074/2016-0, Acórdão 2.634/2016",
    ],
)
def test_legal_numbers_are_not_personal_data(text):
    assert detect(text) == []


def test_cpf_is_not_found_inside_a_longer_number():
    # 52998224725 sits inside a dotted 14-digit string that is not a valid CNPJ.
    assert detect("código 529.982.247-25.001") == []


@pytest.mark.parametrize(
    "text, expected",
    [
        ("escreva para joao.silva+adv@exemplo.com.br hoje", ("EMAIL", "joao.silva+adv@exemplo.com.br")),
        ("ligue (11) 91234-5678", ("PHONE", "(11) 91234-5678")),
        ("ligue +55 11 3456-7890", ("PHONE", "+55 11 3456-7890")),
        ("ligue +55 (21) 2345 6789", ("PHONE", "+55 (21) 2345 6789")),
        ("celular 91234-5678", ("PHONE", "91234-5678")),
        ("telefone: 3456-7890", ("PHONE", "3456-7890")),
        ("RG nº 12.345.678-9 SSP/SP", ("RG", "12.345.678-9")),
        ("portador da carteira de identidade MG-12.345.678", ("RG", "MG-12.345.678")),
        ("CEP 01310-100", ("CEP", "01310-100")),
        ("CEP: 01310100", ("CEP", "01310100")),
        ("situado no 70.040-010, Brasília", ("CEP", "70.040-010")),
        ("cartão 4111 1111 1111 1111", ("CREDIT_CARD", "4111 1111 1111 1111")),
        ("cartão 5500000000000004", ("CREDIT_CARD", "5500000000000004")),
        ("Amex 3782-822463-10005", ("CREDIT_CARD", "3782-822463-10005")),
        ("agência 1234-5", ("BANK_ACCOUNT", "1234-5")),
        ("conta corrente nº 12345-6", ("BANK_ACCOUNT", "12345-6")),
        ("Ag. 0001, c/c 98.765-4", ("BANK_ACCOUNT", "0001")),
        ("Ag. 0001, c/c 98.765-4", ("BANK_ACCOUNT", "98.765-4")),
        ("Tel. 68 3302-0444/0445", ("PHONE", "68 3302-0444/0445")),
        ("telefonei para o número 92-98171-6151", ("PHONE", "92-98171-6151")),
    ],
)
def test_each_type_is_detected(text, expected):
    assert expected in found(text)


@pytest.mark.parametrize(
    "text",
    [
        "SAC 0800 123 4567",  # toll-free numbers belong to companies
        "no biênio 2015-2016",  # year ranges look like landlines without context
        "fls. 3456-3470",
        "cartão 4111 1111 1111 1112",  # fails Luhn
        "RG",  # context without a number
        "12.345.678-9",  # an RG-like number with no context
        "por conta de 3 meses",
        "CEP 1234-567",  # too short for a CEP
        "aplicação dos artigos 355 c/c 359, I, e art. 1.014 c/c 1.015",  # c/c = "combined with"
        "processos 200661810137085 e 200761810046370",  # bare, one Luhn-valid, but no card word near
    ],
)
def test_near_misses_are_not_flagged(text):
    assert detect(text) == []


def test_matches_are_sorted_and_do_not_overlap():
    text = f"CNPJ {CNPJ}; CPF {CPF}; e-mail a@b.com.br; tel. (61) 3333-4444; CEP 70040-010"
    matches = detect(text)
    assert [m.type for m in matches] == ["CNPJ", "CPF", "EMAIL", "PHONE", "CEP"]
    assert all(a.end <= b.start for a, b in zip(matches, matches[1:], strict=False))


def test_redact_replaces_with_placeholders_and_keeps_original_offsets():
    text = f"CPF {CPF}, e-mail maria@adv.com.br."
    redacted, matches = redact(text)
    assert redacted == "CPF [CPF], e-mail [EMAIL]."
    assert matches == [PiiMatch("CPF", 4, 18), PiiMatch("EMAIL", 27, 43)]
    assert [text[m.start : m.end] for m in matches] == [CPF, "maria@adv.com.br"]


def test_report_counts_types_and_never_contains_values():
    text = f"CPF {CPF} e {CPF}, e-mail maria@adv.com.br"
    result = report(detect(text))
    assert result["total"] == 3
    assert result["by_type"] == {"CPF": 2, "EMAIL": 1}
    assert result["spans"][0] == {"type": "CPF", "start": 4, "end": 18}
    dumped = repr(result)
    for value in (CPF, "52998224725", "maria", "adv.com.br"):
        assert value not in dumped


def test_redact_for_log_does_not_load_the_name_model():
    code = (
        "import sys; from harvey.pii import redact_for_log; "
        "print(redact_for_log('CPF 529.982.247-25 do Sr. João da Silva')); "
        "print('pycrfsuite' in sys.modules, 'harvey.pii.names' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["CPF [CPF] do Sr. João da Silva", "False False"]


def test_pseudonymize_round_trip_and_stable_tokens():
    text = (
        f"O autor João da Silva, CPF {CPF}, move ação contra Pedro Alves Pereira. "
        f"João da Silva reitera o pedido; o CPF {CPF} consta dos autos."
    )
    p = Pseudonymizer()
    masked = p.pseudonymize(text)
    assert "João" not in masked and CPF not in masked and "Pedro" not in masked
    assert masked.count("PESSOA_1") == 2 and masked.count("CPF_1") == 2 and "PESSOA_2" in masked
    assert p.restore(masked) == text
    # the LLM's draft reuses the tokens: they come back as the original values
    assert p.restore("PESSOA_1 (CPF_1) contra PESSOA_2; PESSOA_9 desconhecido") == (
        f"João da Silva ({CPF}) contra Pedro Alves Pereira; PESSOA_9 desconhecido"
    )


def test_pseudonymizer_maps_one_value_in_two_layouts_to_one_token():
    p = Pseudonymizer(names=False)
    assert p.pseudonymize(f"CPF {CPF} ou 52998224725; CNPJ {CNPJ}") == "CPF CPF_1 ou CPF_1; CNPJ CNPJ_1"
    assert p.pseudonymize("outro CPF 390.533.447-05") == "outro CPF CPF_2"


@pytest.mark.parametrize(
    "sentence, name",
    [
        ("O Ministro Luiz Fux, relator, negou provimento ao recurso.", "Luiz Fux"),
        (
            "Trata-se de ação de indenização ajuizada por Carlos Eduardo Ramos contra o Banco do Brasil S.A.",
            "Carlos Eduardo Ramos",
        ),
        ("Responsável: Sr. Robério Nunes de Almeida, pregoeiro.", "Robério Nunes de Almeida"),
    ],
)
def test_name_model_finds_a_person_in_a_legal_sentence(sentence, name):
    assert ("PERSON", name) in found(sentence, names=True)


def test_names_are_not_detected_unless_asked():
    assert detect("O Ministro Luiz Fux negou provimento.") == []


def test_name_model_leaves_institutions_alone():
    types = {m.type for m in detect("O Supremo Tribunal Federal e o Ministério Público da União.", names=True)}
    assert "PERSON" not in types
