using System.Diagnostics.Metrics;

namespace ZcProxy.Hosting.Systemd;

/// <summary>
/// Open client connections of this host, read from Kestrel's own "kestrel.active_connections" instrument.
/// Only the meter created by this host's IMeterFactory is counted, so other Kestrel servers in the same
/// process (the demo origins, test origins) do not inflate the number.
/// </summary>
internal sealed class ActiveConnections : IDisposable
{
    private const string KestrelMeter = "Microsoft.AspNetCore.Server.Kestrel";
    private const string Instrument = "kestrel.active_connections";

    private readonly MeterListener _listener = new();
    private long _count;

    public ActiveConnections(IMeterFactory meterFactory)
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name == KestrelMeter && instrument.Name == Instrument && ReferenceEquals(instrument.Meter.Scope, meterFactory))
                listener.EnableMeasurementEvents(instrument);
        };
        _listener.SetMeasurementEventCallback<long>((_, delta, _, _) => Interlocked.Add(ref _count, delta));
        _listener.Start();
    }

    public long Count => Interlocked.Read(ref _count);

    public void Dispose() => _listener.Dispose();
}
