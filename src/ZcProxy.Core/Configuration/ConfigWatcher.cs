using System.Runtime.InteropServices;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace ZcProxy.Core.Configuration;

/// <summary>
/// Triggers reloads: SIGHUP always; file-system events after a quiet period (editors write in bursts);
/// and a periodic fingerprint check as a backstop for changes the events miss (timing: <see cref="ReloadSignal"/>).
/// </summary>
internal sealed partial class ConfigWatcher(FileConfigProvider provider, TimeProvider time, ILogger<ConfigWatcher> logger) : BackgroundService
{
    private readonly ReloadSignal _signal = new(time);
    private readonly List<FileSystemWatcher> _watchers = [];
    private string _fingerprint = "";
    private ConfigPaths? _paths;
    private long _configEvents;
    private PosixSignalRegistration? _sighupRegistration;

    /// <summary>
    /// Takes the fingerprint and starts watching before the host reports started: since .NET 10 ExecuteAsync runs
    /// on the thread pool, and an edit made between "started" and a late ExecuteAsync would otherwise be missed.
    /// </summary>
    /// <summary>File-system events on configuration files so far (each wakes the reload check); events on other files are ignored.</summary>
    internal long ConfigEvents => Interlocked.Read(ref _configEvents);

    public override Task StartAsync(CancellationToken cancellationToken)
    {
        _fingerprint = ConfigFingerprint.Compute(provider.MainFile);
        _sighupRegistration = PosixSignalRegistration.Create(PosixSignal.SIGHUP, context =>
        {
            context.Cancel = true; // SIGHUP means reload, not hang-up
            _signal.Hangup();
        });
        WatchDirectories();
        return base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                var cause = await _signal.NextAsync(stoppingToken);
                if (cause == ReloadCause.Hangup)
                {
                    await ReloadAsync("SIGHUP");
                    continue;
                }
                var fingerprint = ConfigFingerprint.Compute(provider.MainFile);
                if (fingerprint != _fingerprint) await ReloadAsync("file change");
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception e)
            {
                LogWatchFailed(e);
            }
        }
    }

    private async Task ReloadAsync(string reason)
    {
        _fingerprint = ConfigFingerprint.Compute(provider.MainFile);
        await provider.ReloadAsync(reason);
        WatchDirectories();
    }

    /// <summary>
    /// Watches the folders of the configuration's files (<see cref="ConfigPaths"/>), recursively only where an include
    /// glob reaches into subfolders, and wakes the reload check only for events on those files: anything else written
    /// there (a cache, a log) neither costs a check nor delays one (a stream of unrelated events would otherwise keep
    /// the quiet period from ever ending).
    /// </summary>
    private void WatchDirectories()
    {
        var paths = ConfigPaths.Of(provider.MainFile);
        var watched = Volatile.Read(ref _paths);
        Volatile.Write(ref _paths, paths);
        if (paths.SameWatchAs(watched)) return;
        foreach (var w in _watchers) w.Dispose();
        _watchers.Clear();
        foreach (var (dir, recursive) in paths.Directories)
        {
            try
            {
                var w = new FileSystemWatcher(dir) { IncludeSubdirectories = recursive, NotifyFilter = NotifyFilters.FileName | NotifyFilters.DirectoryName | NotifyFilters.LastWrite | NotifyFilters.Size };
                w.Changed += (_, e) => OnEvent(e.FullPath);
                w.Created += (_, e) => OnEvent(e.FullPath);
                w.Deleted += (_, e) => OnEvent(e.FullPath);
                w.Renamed += (_, e) =>
                {
                    if (!OnEvent(e.FullPath)) OnEvent(e.OldFullPath);
                };
                w.Error += (_, _) => _signal.FileChanged(); // events were lost (queue overflow): look
                w.EnableRaisingEvents = true;
                _watchers.Add(w);
            }
            catch (Exception e) when (e is IOException or ArgumentException or UnauthorizedAccessException)
            {
                LogWatchFailed(e); // the periodic fingerprint check still catches changes
            }
        }
    }

    private bool OnEvent(string path)
    {
        if (!Volatile.Read(ref _paths)!.Covers(path)) return false;
        Interlocked.Increment(ref _configEvents);
        _signal.FileChanged();
        return true;
    }

    public override void Dispose()
    {
        _sighupRegistration?.Dispose();
        foreach (var w in _watchers) w.Dispose();
        _signal.Dispose();
        base.Dispose();
    }

    [LoggerMessage(EventId = 10, Level = LogLevel.Warning, Message = "config watching problem (changes are still polled every 2s)")]
    private partial void LogWatchFailed(Exception e);
}
