"""One source's record of a true person: the truth, the source's own ids, and per-record noise."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from random import Random
from typing import Any, Final

from gateway.synthetic.noise import (
    JUNK_DATES_OF_BIRTH,
    JUNK_NAME_PREFIXES,
    NOT_ENTERED,
    NoiseKind,
    nickname_for,
    recase_or_respace,
    typo,
)
from gateway.synthetic.pools import Pools
from gateway.synthetic.population import (
    REFERENCE_DATE,
    Permutation,
    TrueAddress,
    TruePerson,
    between,
    seeded_random,
)
from gateway.synthetic.settings import NoiseRates, PopulationSettings
from gateway.synthetic.sources import SourceFormat
from schemas import Case, CaseRecord, OffenderManager
from schemas.identifiers import CHECK_LETTERS, PLACEHOLDER_CRO
from schemas.postcodes import NO_FIXED_ABODE_POSTCODES

__all__ = ["SourceRecord", "SourceRenderer"]

_REFERENCE_MOMENT: Final = datetime.combine(REFERENCE_DATE, time(17, 0), UTC)
_UPDATED_WITHIN_SECONDS: Final = 3 * 365 * 24 * 3600
_NO_FIXED_ABODE: Final = tuple(sorted(NO_FIXED_ABODE_POSTCODES))
_EXTERNAL_ID_SPACE: Final = 10**8


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """A rendered record with its ground truth: whose it is and what noise it carries.

    ``valid`` is False only for a record whose PNC check letter was spoilt on purpose: such a
    record is built without validating that identifier and the gateway will quarantine it.
    """

    external_id: str
    person_key: str
    record: CaseRecord
    noise: tuple[NoiseKind, ...]
    valid: bool


class SourceRenderer:
    """Renders the records one source holds for a block of true persons."""

    def __init__(
        self,
        fmt: SourceFormat,
        *,
        seed: int,
        noise: NoiseRates,
        settings: PopulationSettings,
        pools: Pools,
    ) -> None:
        self.fmt = fmt
        self.seed = seed
        self.noise = noise
        self.settings = settings
        self.pools = pools
        self._external_ids = Permutation(
            _EXTERNAL_ID_SPACE, seeded_random(seed, "external-ids", fmt.source)
        )

    def external_id(self, person: TruePerson) -> str:
        """The id of the person's record in this source (the CRN for a CRN-keyed source)."""
        if self.fmt.id_prefix is None:
            return person.crn
        return f"{self.fmt.id_prefix}{self._external_ids(person.index):08d}"

    def render_block(self, number: int, persons: list[TruePerson]) -> Iterator[SourceRecord]:
        """The records of block ``number``'s persons who are in this source, in person order."""
        rng = seeded_random(self.seed, "noise", self.fmt.source, number)
        source = self.fmt.source
        for person in persons:
            if source in person.sources:
                yield self.render(person, rng)

    def render(self, person: TruePerson, rng: Random) -> SourceRecord:
        """This source's record of ``person``, noise drawn from ``rng``."""
        rates = self.noise
        kinds: list[NoiseKind] = []
        forenames = list(person.forenames)
        surname = person.surname
        aliases: list[dict[str, Any]] = []
        born = person.date_of_birth

        if rng.random() < rates.middle_names_missing and len(forenames) > 1:
            del forenames[1:]
            kinds.append(NoiseKind.MIDDLE_NAMES_MISSING)
        if rng.random() < rates.nickname:
            nickname = nickname_for(forenames[0], rng)
            if nickname is not None:
                forenames[0] = nickname
                kinds.append(NoiseKind.NICKNAME)
        if rng.random() < rates.surname_changed:
            surname = person.married_surname
            if rng.random() < 0.5:
                aliases.append({"forenames": list(person.forenames), "surname": person.surname})
            kinds.append(NoiseKind.SURNAME_CHANGED)
        if rng.random() < rates.name_typo:
            if rng.random() < 0.6:
                spoilt = typo(surname, rng)
                if spoilt is not None:
                    surname = spoilt
            else:
                spoilt = typo(forenames[0], rng)
                if spoilt is not None:
                    forenames[0] = spoilt
            if spoilt is not None:
                kinds.append(NoiseKind.NAME_TYPO)
        if rng.random() < rates.case_spacing:
            forenames, surname = recase_or_respace(forenames, surname, rng)
            kinds.append(NoiseKind.CASE_SPACING)
        if rng.random() < rates.dob_transposed and born.day <= 12 and born.day != born.month:
            born = born.replace(day=born.month, month=born.day)
            kinds.append(NoiseKind.DOB_TRANSPOSED)

        addresses: list[dict[str, Any]]
        if rng.random() < rates.address_moved:
            addresses = [
                _address(person.moved_to, "MAIN"),
                _address(person.address, "PREVIOUS", ended=person.moved_to.start_date),
            ]
            kinds.append(NoiseKind.ADDRESS_MOVED)
        else:
            addresses = [_address(person.address, "MAIN")]

        pnc: str | None = person.pnc
        malformed_pnc: str | None = None
        roll = rng.random()
        if roll < rates.pnc_missing:
            pnc = None
            kinds.append(NoiseKind.PNC_MISSING)
        elif roll < rates.pnc_missing + rates.pnc_malformed:
            right = CHECK_LETTERS.index(person.pnc[-1])
            malformed_pnc = person.pnc[:-1] + CHECK_LETTERS[(right + rng.randint(1, 22)) % 23]
            pnc = None
            kinds.append(NoiseKind.PNC_MALFORMED)

        held = self.settings.identifier_held_rate
        identifiers: dict[str, Any] = {
            "crn": person.crn
            if self.fmt.keyed_by_crn or rng.random() < self.settings.crn_held_rate
            else None,
            "pnc": pnc,
            "cro": person.cro if person.cro is not None and rng.random() < held else None,
            "noms": person.noms if person.noms is not None and rng.random() < held else None,
            "nino": person.nino if person.nino is not None and rng.random() < held else None,
        }

        # Junk placeholders, last: they overwrite whatever the source held.
        if rng.random() < rates.junk_dob:
            born = date.fromisoformat(rng.choice(JUNK_DATES_OF_BIRTH))
            kinds.append(NoiseKind.JUNK_DOB)
        if rng.random() < rates.junk_cro:
            identifiers["cro"] = PLACEHOLDER_CRO
            kinds.append(NoiseKind.JUNK_CRO)
        if rng.random() < rates.junk_no_fixed_abode:
            addresses = [
                {
                    "status": "MAIN",
                    "postcode": rng.choice(_NO_FIXED_ABODE),
                    "start_date": REFERENCE_DATE - timedelta(days=rng.randint(1, 90)),
                    "no_fixed_abode": True,
                },
                *({**address, "status": "PREVIOUS"} for address in addresses[:1]),
            ]
            kinds.append(NoiseKind.JUNK_NO_FIXED_ABODE)
        if rng.random() < rates.junk_name:
            variant = rng.randrange(3)
            if variant == 0:
                forenames = [NOT_ENTERED]
            else:
                surname = f"{JUNK_NAME_PREFIXES[variant - 1]}{surname}"
            kinds.append(NoiseKind.JUNK_NAME)

        external_id = self.external_id(person)
        data = {
            "provenance": {
                "source": self.fmt.source,
                "external_id": external_id,
                "source_version": "1",
                "source_updated_at": _REFERENCE_MOMENT
                - timedelta(seconds=between(rng, 0, _UPDATED_WITHIN_SECONDS - 1)),
            },
            "person": {
                "forenames": forenames,
                "surname": surname,
                "aliases": aliases,
                "date_of_birth": born,
                "sex": person.sex.value,
                "addresses": addresses,
                "contact": {"mobile": person.mobile} if person.mobile else None,
                "identifiers": identifiers,
            },
            "case": self._case(person, rng),
        }
        record = CaseRecord.model_validate(data)
        if malformed_pnc is not None:
            # Set after validation on purpose: the schema would (rightly) refuse it.
            record.person.identifiers.pnc = malformed_pnc
        return SourceRecord(
            external_id=external_id,
            person_key=person.key,
            record=record,
            noise=tuple(kinds),
            valid=malformed_pnc is None,
        )

    def _case(self, person: TruePerson, rng: Random) -> Case:
        if person.case_model is None:
            person.case_model = Case.model_validate(person.case)
        manager = OffenderManager.model_validate(self._offender_manager(rng))
        # A shallow copy: the events and registers are shared, read-only, between sources.
        return person.case_model.model_copy(update={"offender_manager": manager})

    def _offender_manager(self, rng: Random) -> dict[str, Any]:
        provider = self.fmt.provider_code
        team = between(rng, 1, 20)
        staff = between(rng, 1, 400)
        pools = self.pools
        return {
            "provider_code": provider,
            "team_code": f"{provider}T{team:02d}",
            "staff_code": f"{provider}A{staff:03d}",
            # Staff are people too: a name drawn from the pools, stable per staff code.
            "staff_name": f"{pools.female_forenames[staff % len(pools.female_forenames)]} "
            f"{pools.surnames[(staff * 7) % len(pools.surnames)]}",
        }


def _address(address: TrueAddress, status: str, *, ended: date | None = None) -> dict[str, Any]:
    return {
        "status": status,
        "lines": list(address.lines),
        "town": address.town,
        "county": address.county,
        "postcode": address.postcode,
        "start_date": address.start_date,
        "end_date": ended,
        "no_fixed_abode": False,
    }
