"""Synthetic CRC case data with ground truth, for testing and measuring the gateway.

``crc-gateway generate --persons N --seed S --out DIR`` (see `generator` for the output layout).

Population (`population`): N true persons numbered P0000001..., each with names, sex, date of
birth (18 to 70 on the reference date 2021-06-25, never a placeholder), a current address and one
they may have moved to, a CRN, a PNC ID (valid check letter), and a CRO number, NOMS number and
National Insurance number for most; 1 to 3 events (offences, sentence, requirements), a RoSH
registration (MAPPA and domestic-abuse flags for some), a tier. Identifiers are unique across the
population. Names, streets, towns and postcodes are sampled from pools drawn once from
``Faker("en_GB")``; postcodes are checked against the schema.

Sources (`sources`): crc-delius (delius_flat CSV, keyed by CRN), crc-xml (xml_case_export XML),
crc-rest (rest_json pages, JSON Lines), crc-canonical (canonical NDJSON). Each person is in 1, 2
or 3 of them (weights 0.2, 0.3, 0.5 by default), under a different external id in each.

Twins (``twin_rate`` 0.01): the next person shares the surname, date of birth and address, with
another forename and their own identifiers; they are two people in the truth.

Noise, per source record (`settings.NoiseRates`; defaults):

    name_typo 0.03             a letter substituted, deleted or transposed (surname or forename)
    nickname 0.05              William -> Bill, Liz -> Elizabeth ... (where the name has one)
    dob_transposed 0.02        day and month swapped (where both are 12 or less)
    pnc_missing 0.10           no PNC ID
    pnc_malformed 0.01         wrong PNC check letter: the one kind of record the gateway rejects
    surname_changed 0.02       married surname, the old one kept as an alias half the time
    address_moved 0.08         a newer MAIN address, the old one as PREVIOUS
    middle_names_missing 0.15  only the first forename
    case_spacing 0.10          names upper- or lower-cased, a hyphen spaced, an apostrophe dropped
    junk_dob 0.003             date of birth 1900-01-01 or 1970-01-01
    junk_cro 0.005             CRO 000000/00Z
    junk_no_fixed_abode 0.005  MAIN address NF1 1NF or NF1 1FA, no fixed abode
    junk_name 0.003            forename NOT ENTERED, or surname prefixed DUPLICATE_ / MIG_ERROR_

A source record also holds each CRO, NOMS and NI number the person has with chance 0.85, and a
non-Delius source the CRN with chance 0.6. Everything is drawn from ``random.Random`` streams
seeded from the run's seed, so the same inputs give the same bytes (for a given Faker version,
recorded in the manifest). Only synthetic data: no real person's details are used.
"""

from gateway.synthetic.generator import (
    DEFAULT_RECORDS_PER_FILE,
    GENERATOR_VERSION,
    GenerateOptions,
    GenerationError,
    GenerationReport,
    MissingWriterPolicy,
    SourceSummary,
    generate,
    resolve_sources,
)
from gateway.synthetic.noise import NoiseKind
from gateway.synthetic.settings import NoiseRates, PopulationSettings
from gateway.synthetic.sources import SOURCE_FORMATS, SourceFormat, WriterUnavailable

__all__ = [
    "DEFAULT_RECORDS_PER_FILE",
    "GENERATOR_VERSION",
    "SOURCE_FORMATS",
    "GenerateOptions",
    "GenerationError",
    "GenerationReport",
    "MissingWriterPolicy",
    "NoiseKind",
    "NoiseRates",
    "PopulationSettings",
    "SourceFormat",
    "SourceSummary",
    "WriterUnavailable",
    "generate",
    "resolve_sources",
]
