"""The made-up patient used by ``myelo-docs demo`` and the README."""

DEMO_RECORD = {
    "type": "lumbar",
    "patient_name": "Alex Demo-Patient",
    "date_of_birth": "1958-07-14",
    "mrn": "DEMO-000123",
    "procedure_date": "2026-11-26",
    "physician": "Dr. Morgan Example",
    "nurse": "Chris Sample, RN",
    "follow_up": "Clinic visit with Dr. Example on 2026-12-10 at 9:30 am.",
    "instructions": ["Wear your back brace when you walk, as before the test."],
    "medications": [
        {"name": "Warfarin", "instruction": "Restart on 2026-11-27 unless told otherwise."},
        {"name": "Metformin", "instruction": "Restart 48 hours after the test."},
    ],
}
