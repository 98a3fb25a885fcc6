"""One valid instance of every message type, shared by the protocol tests."""

from __future__ import annotations

import protocol as p

UOD = p.UodDescription(
    name="Chromatography",
    author_name="A. Chemist",
    tags=[
        p.TagDescription(name="FT01", unit="L/h", kind="reading", direction="input"),
        p.TagDescription(name="Inlet", kind="choice", direction="output", choices=["VA01", "VA02"]),
    ],
    commands=[
        p.CommandDescription(
            name="PU01",
            argument=p.ArgumentDescription(kind="number", units=["%"], minimum=0, maximum=100),
        )
    ],
    process_values=[
        p.ProcessValueDescription(tag="FT01"),
        p.ProcessValueDescription(
            tag="Inlet",
            kind="choice",
            choices=[p.ProcessValueChoice(label="Buffer A", pcode="Inlet: VA01")],
        ),
    ],
    plot=p.PlotConfiguration(
        subplots=[
            p.SubPlot(
                axes=[p.PlotAxis(label="Flow", tags=["FT01"], y_min=0, y_max=100, color="#1f77b4")],
                color_regions=[p.ColorRegion(tag="Inlet", colors={"VA01": "#eef"})],
            )
        ]
    ),
    base_units=["s", "min", "h", "L", "CV"],
    alarms=[
        p.AlarmDefinition(
            name="PT01 high",
            priority=p.AlarmPriority.HIGH,
            message="Check the column for a blockage",
            condition="PT01 > 3 bar",
            tag="PT01",
            delay=2.0,
            deadband=0.2,
            escalation_minutes=10,
            suppress_when="System State = Stopped",
        ),
        p.AlarmDefinition(
            name="Pump fault",
            kind=p.AlarmKind.DISCRETE,
            priority=p.AlarmPriority.URGENT,
            condition="Pump = Fault",
            max_shelve_minutes=0,
        ),
    ],
)

LINE = p.RunLogLine(
    id="r1", line_id="m3", text="PU01: 50 %", start=1.0, state=p.LineState.RUNNING, progress=0.5
)

ALL_MESSAGES: list[p.Message] = [
    p.RegisterEngine(
        engine_id="pc1/Chromatography",
        computer_name="pc1",
        uod_name="Chromatography",
        session_id="s1",
        engine_version="0.1.0",
        protocol_version="1.0",
        uod=UOD,
        uod_hash="u",
        method_hash="m",
        clock=1700000000.0,
    ),
    p.TagsUpdated(
        seq=1,
        time=1.0,
        run_id="run1",
        tags=[
            p.TagValue(name="FT01", value=12.5, unit="L/h", tick=1.0),
            p.TagValue(
                name="Inlet", value="VA01", tick=1.0, quality=p.Quality.STALE, historical=True
            ),
            p.TagValue(name="Valve", value=True, tick=1.0, simulated=True),
            p.TagValue(name="Count", value=3, tick=1.0),
            p.TagValue(name="Empty", value=None, tick=1.0, quality=p.Quality.BAD),
        ],
    ),
    p.RunStarted(seq=2, time=1.0, run_id="run1", started=1.0, method_version=3, user="ann"),
    p.RunStopped(seq=3, time=2.0, run_id="run1", stopped=2.0, reason="stop", user="ann"),
    p.RunLog(seq=4, time=1.0, run_id="run1", lines=[LINE]),
    p.Method(seq=5, time=1.0, version=2, lines=[p.MethodLine(id="m1", text="Mark: A")], user="ann"),
    p.MethodState(seq=6, time=1.0, run_id="run1", version=2, started=["m1"], completed=["m1"]),
    p.ControlState(
        seq=7, time=1.0, run_id="run1", state=p.SystemState.RUNNING, block="Load", run_time=3.5
    ),
    p.ErrorLog(
        seq=8,
        time=1.0,
        entries=[p.ErrorLogEntry(time=1.0, level="error", message="PT01 unreachable")],
    ),
    p.AlarmsUpdated(
        seq=9,
        time=3.0,
        run_id="run1",
        events=[
            p.AlarmEvent(
                name="PT01 high",
                state=p.AlarmState.UNACK_ACTIVE,
                previous=p.AlarmState.NORMAL,
                active=True,
                time=3.0,
                cause=p.AlarmCause.CONDITION,
                value=3.4,
                priority=p.AlarmPriority.HIGH,
                message="Check the column for a blockage",
            ),
            p.AlarmEvent(
                name="PT01 high",
                state=p.AlarmState.SHELVED,
                previous=p.AlarmState.UNACK_ACTIVE,
                active=True,
                time=3.5,
                cause=p.AlarmCause.SHELVE,
                user="ann",
                comment="sensor being replaced",
                shelved_until=903.5,
                priority=p.AlarmPriority.HIGH,
            ),
        ],
    ),
    p.Heartbeat(seq=8, time=2.0),
    p.CommandResult(
        id="c1", seq=8, ok=False, error="Start is not valid while Running", data={"version": 4}
    ),
    p.Registered(
        engine_id="pc1/Chromatography",
        session_id="s1",
        last_seq=0,
        clock_offset=0.25,
        protocol_version="1.0",
    ),
    p.Ack(seq=8),
    p.ResendRequest(from_seq=5),
    p.InvokeCommand(id="c2", user="ann", pcode="Mark: manual"),
    p.ControlCommand(id="c3", user="ann", command=p.ControlAction.START),
    p.SetMethod(
        id="c4", user="ann", text="Mark: A\nMark: B", expected_version=2, line_ids=["m1", None]
    ),
    p.CancelLine(id="c5", user="ann", run_log_id="r1"),
    p.ForceLine(id="c6", user="ann", run_log_id="r1"),
    p.ResumeLine(id="c8", user="ann", run_log_id="r1", skip=True),
    p.AlarmCommand(
        id="c9",
        user="ann",
        alarm="PT01 high",
        action=p.AlarmAction.SHELVE,
        minutes=15,
        reason="sensor being replaced",
    ),
    p.RunModel(id="m1", user="ann", text="Mark: A\nStop", speed=100.0, duration=600.0),
    p.CancelModel(id="c10", user="ann", model_id="m1"),
    p.ModelProgress(
        model_id="m1",
        status="working",
        data={"progress": 0.5, "intermediate": {"run_time": 30.0, "block": "Load"}},
    ),
    p.LiveDemand(watched=False),
    p.LiveTags(
        time=2.1,
        run_id="r1",
        tags=[p.TagValue(name="FT01", value=12.6, unit="L/h", tick=2.1)],
    ),
    p.Ping(id="c7", time=3.0),
    p.ProtocolErrorMessage(rule=11, message="frame is not valid JSON", fatal=False),
]
