package flowc.bench;

import inference.Inference.ModelInferRequest;
import inference.Inference.ModelInferRequest.InferInputTensor;
import inference.Inference.ModelInferResponse;
import inference.Inference.ModelInferResponse.InferOutputTensor;

import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.Headers;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.CloseOptions;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.JoinWindows;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.StreamJoined;
import org.apache.kafka.streams.processor.StateRestoreListener;
import org.apache.kafka.streams.processor.StreamPartitioner;
import org.apache.kafka.streams.processor.api.FixedKeyProcessor;
import org.apache.kafka.streams.processor.api.FixedKeyProcessorContext;
import org.apache.kafka.streams.processor.api.FixedKeyRecord;

/**
 * The topologies flowc compiles for {@code samples/chain.yaml} and {@code samples/join.yaml}
 * (see {@code flowc compile}), written as a Kafka Streams application the way Seldon Core 2's
 * dataflow engine writes them: a source per topic filtered on the {@code pipeline} header, the
 * PIPELINES.md §5.1 conversion (tensor selection, tensorMap renames, response → request), a
 * windowed KStream-KStream join for §5.3 inner joins (RocksDB window stores with changelogs),
 * and a sink that keeps the partition named by the key's leading integer (§4.2).
 *
 * <pre>
 * java -cp ... flowc.bench.KStreamsBench bootstrap=HOST:PORT topology=relay|join|chain
 *     prefix=P app=APPLICATION_ID state=DIR [window=60000] [threads=1]
 *     [guarantee=at_least_once|exactly_once_v2]
 * </pre>
 *
 * Prints {@code running <ms since start>} when the instance reaches RUNNING and
 * {@code restored <records> <ms>} after restoring state; closes (leaving its group) when
 * standard input ends.
 */
public final class KStreamsBench {
    private static final String PIPELINE = "pipeline";
    private static final String ALIBI_TYPE = "x-seldon-alibi-type";
    private static final String ALIBI_METHOD = "x-seldon-alibi-method";

    /** What a select does with a message (PIPELINES.md §5.1, by topic suffix). */
    enum Kind { RESPONSE_TO_REQUEST, REQUEST_TO_REQUEST, RESPONSE_TO_RESPONSE }

    public static void main(String[] argv) throws Exception {
        long started = System.nanoTime();
        Map<String, String> args = new HashMap<>();
        for (String a : argv) {
            int eq = a.indexOf('=');
            if (eq < 0) throw new IllegalArgumentException("expected key=value, got " + a);
            args.put(a.substring(0, eq), a.substring(eq + 1));
        }
        String bootstrap = need(args, "bootstrap");
        String topology = need(args, "topology");
        String prefix = need(args, "prefix");
        long window = Long.parseLong(args.getOrDefault("window", "60000"));
        Names n = new Names(prefix, "default");

        StreamsBuilder b = new StreamsBuilder();
        switch (topology) {
            case "relay" -> relay(b, n);
            case "chain" -> {
                // samples/chain.yaml: tfsimple1 (pipeline inputs → tfsimple1 inputs), tfsimple2
                // (tfsimple1 outputs → tfsimple2 inputs, renamed), _output (tfsimple2 outputs →
                // pipeline outputs).
                String p = "tfsimples";
                step(b, n.pipelineInputs(p), n.modelInputs("tfsimple1"), p, Kind.REQUEST_TO_REQUEST, null);
                relay(b, n);
                step(b, n.modelOutputs("tfsimple2"), n.pipelineOutputs(p), p, Kind.RESPONSE_TO_RESPONSE, null);
            }
            case "join" -> join(b, n, window);
            default -> throw new IllegalArgumentException("unknown topology " + topology);
        }
        Topology t = b.build();

        Properties props = new Properties();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, need(args, "app"));
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(StreamsConfig.STATE_DIR_CONFIG, need(args, "state"));
        // The fairness settings (benches/kstreams/RESULTS.md): flowc commits after every batch
        // of at most 100 ms, at least once; one stream thread as flowc's one thread per group.
        props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 100);
        // at_least_once, or exactly_once_v2 against flowc's exactly-once.
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, args.getOrDefault("guarantee", StreamsConfig.AT_LEAST_ONCE));
        props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, Integer.parseInt(args.getOrDefault("threads", "1")));
        props.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
        props.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
        // flowc's client settings on Apache Kafka: fetch.wait.max.ms=100, batches of 500,
        // session 6 s / heartbeat 1 s; producer acks=all, linger.ms=0, idempotent.
        props.put(StreamsConfig.consumerPrefix(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG), 100);
        props.put(StreamsConfig.consumerPrefix(ConsumerConfig.MAX_POLL_RECORDS_CONFIG), 500);
        props.put(StreamsConfig.consumerPrefix(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG), 6000);
        props.put(StreamsConfig.consumerPrefix(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG), 1000);
        props.put(StreamsConfig.producerPrefix(ProducerConfig.LINGER_MS_CONFIG), 0);
        props.put(StreamsConfig.producerPrefix(ProducerConfig.ACKS_CONFIG), "all");
        props.put(StreamsConfig.producerPrefix(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG), true);

        KafkaStreams streams = new KafkaStreams(t, props);
        AtomicLong restored = new AtomicLong();
        AtomicLong restoreStart = new AtomicLong(-1);
        AtomicLong restoreEnd = new AtomicLong(-1);
        streams.setGlobalStateRestoreListener(new StateRestoreListener() {
            @Override
            public void onRestoreStart(TopicPartition tp, String store, long start, long end) {
                restoreStart.compareAndSet(-1, System.nanoTime());
            }

            @Override
            public void onBatchRestored(TopicPartition tp, String store, long batchEnd, long n) {
                restored.addAndGet(n);
            }

            @Override
            public void onRestoreEnd(TopicPartition tp, String store, long total) {
                restoreEnd.set(System.nanoTime());
            }
        });
        CountDownLatch done = new CountDownLatch(1);
        streams.setStateListener((now, before) -> {
            if (now == KafkaStreams.State.RUNNING) {
                long ms = (System.nanoTime() - started) / 1_000_000;
                if (restoreStart.get() >= 0 && restoreEnd.get() >= 0) {
                    System.out.printf("restored %d %.1f%n", restored.get(),
                            (restoreEnd.get() - restoreStart.get()) / 1e6);
                }
                System.out.println("running " + ms);
                System.out.flush();
            }
            if (now == KafkaStreams.State.ERROR || now == KafkaStreams.State.NOT_RUNNING) {
                done.countDown();
            }
        });
        if (args.containsKey("describe")) System.err.println(t.describe());
        streams.start();
        Thread stdin = new Thread(() -> {
            try (InputStream in = System.in) {
                while (in.read() >= 0) { }
            } catch (Exception ignored) {
            }
            done.countDown();
        }, "stdin-watch");
        stdin.setDaemon(true);
        stdin.start();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> close(streams)));
        done.await();
        close(streams);
        System.exit(0);
    }

    private static void close(KafkaStreams streams) {
        streams.close(CloseOptions.groupMembershipOperation(CloseOptions.GroupMembershipOperation.LEAVE_GROUP)
                .withTimeout(Duration.ofSeconds(10)));
    }

    private static String need(Map<String, String> args, String key) {
        String v = args.get(key);
        if (v == null) throw new IllegalArgumentException("missing " + key + "=...");
        return v;
    }

    /** Topic names of PIPELINES.md §4.1. */
    record Names(String prefix, String ns) {
        String modelInputs(String m) { return prefix + "." + ns + ".model." + m + ".inputs"; }
        String modelOutputs(String m) { return prefix + "." + ns + ".model." + m + ".outputs"; }
        String pipelineInputs(String p) { return prefix + "." + ns + ".pipeline." + p + ".inputs"; }
        String pipelineOutputs(String p) { return prefix + "." + ns + ".pipeline." + p + ".outputs"; }
    }

    /** samples/chain.yaml's step tfsimple2: tfsimple1.outputs OUTPUT0/OUTPUT1 → INPUT0/INPUT1. */
    private static void relay(StreamsBuilder b, Names n) {
        Map<String, String> map = new LinkedHashMap<>();
        map.put("OUTPUT0", "INPUT0");
        map.put("OUTPUT1", "INPUT1");
        step(b, n.modelOutputs("tfsimple1"), n.modelInputs("tfsimple2"), "tfsimples", Kind.RESPONSE_TO_REQUEST, map);
    }

    private static void step(StreamsBuilder b, String from, String to, String pipeline, Kind kind, Map<String, String> select) {
        b.stream(from, Consumed.with(Serdes.String(), Serdes.ByteArray()))
                .processValues(() -> new Select(pipeline, kind, select))
                .to(to, produced());
    }

    /**
     * samples/join.yaml's step tfsimple3: tfsimple1.outputs.OUTPUT0 → INPUT0 joined (inner, by
     * key, within the window) with tfsimple2.outputs.OUTPUT1 → INPUT1, merged into one request.
     */
    private static void join(StreamsBuilder b, Names n, long window) {
        String p = "join";
        KStream<String, byte[]> left = b.stream(n.modelOutputs("tfsimple1"), Consumed.with(Serdes.String(), Serdes.ByteArray()))
                .processValues(() -> new Select(p, Kind.RESPONSE_TO_REQUEST, Map.of("OUTPUT0", "INPUT0")));
        KStream<String, byte[]> right = b.stream(n.modelOutputs("tfsimple2"), Consumed.with(Serdes.String(), Serdes.ByteArray()))
                .processValues(() -> new Select(p, Kind.RESPONSE_TO_REQUEST, Map.of("OUTPUT1", "INPUT1")));
        left.join(right, KStreamsBench::merge,
                        JoinWindows.ofTimeDifferenceWithNoGrace(Duration.ofMillis(window)),
                        StreamJoined.with(Serdes.String(), Serdes.ByteArray(), Serdes.ByteArray())
                                .withStoreName("tfsimple3-join"))
                .to(n.modelInputs("tfsimple3"), produced());
    }

    /** §5.3: tensors in source order; id and parameters from the first source. */
    static byte[] merge(byte[] first, byte[] second) {
        try {
            ModelInferRequest a = ModelInferRequest.parseFrom(first);
            ModelInferRequest c = ModelInferRequest.parseFrom(second);
            ModelInferRequest.Builder out = a.toBuilder().addAllInputs(c.getInputsList());
            if (a.getRawInputContentsCount() > 0 || c.getRawInputContentsCount() > 0) {
                if (a.getRawInputContentsCount() != a.getInputsCount() || c.getRawInputContentsCount() != c.getInputsCount()) {
                    throw new IllegalStateException("raw and typed tensors mixed in one join");
                }
                out.addAllRawInputContents(c.getRawInputContentsList());
            }
            return out.build().toByteArray();
        } catch (com.google.protobuf.InvalidProtocolBufferException e) {
            throw new IllegalStateException(e);
        }
    }

    private static Produced<String, byte[]> produced() {
        return Produced.with(Serdes.String(), Serdes.ByteArray()).withStreamPartitioner(new KeyPartition());
    }

    /** §4.2: the partition is the key's leading integer, clamped to the topic's partitions. */
    static final class KeyPartition implements StreamPartitioner<String, byte[]> {
        @Override
        public Optional<Set<Integer>> partitions(String topic, String key, byte[] value, int count) {
            long p = 0;
            int i = 0;
            while (key != null && i < key.length() && Character.isDigit(key.charAt(i)) && i < 9) {
                p = p * 10 + (key.charAt(i) - '0');
                i++;
            }
            if (i == 0) return Optional.empty();
            return Optional.of(Set.of((int) Math.min(p, count - 1)));
        }
    }

    /**
     * A step's source filter and select (§4.3, §5.1): drops records of other pipelines, keeps
     * the selected tensors (renamed), converts by topic suffix, drops a message left without
     * tensors, and writes the step's headers (pipeline replaced, alibi headers removed).
     */
    static final class Select implements FixedKeyProcessor<String, byte[], byte[]> {
        private final String pipeline;
        private final byte[] pipelineBytes;
        private final Kind kind;
        private final Map<String, String> select;
        private FixedKeyProcessorContext<String, byte[]> ctx;

        Select(String pipeline, Kind kind, Map<String, String> select) {
            this.pipeline = pipeline;
            this.pipelineBytes = pipeline.getBytes(StandardCharsets.UTF_8);
            this.kind = kind;
            this.select = select;
        }

        @Override
        public void init(FixedKeyProcessorContext<String, byte[]> context) {
            this.ctx = context;
        }

        @Override
        public void process(FixedKeyRecord<String, byte[]> record) {
            Header h = record.headers().lastHeader(PIPELINE);
            if (h == null || !pipeline.equals(new String(h.value(), StandardCharsets.UTF_8))) return;
            byte[] out;
            try {
                out = switch (kind) {
                    case RESPONSE_TO_REQUEST -> responseToRequest(ModelInferResponse.parseFrom(record.value()), select);
                    case REQUEST_TO_REQUEST -> requestToRequest(ModelInferRequest.parseFrom(record.value()));
                    case RESPONSE_TO_RESPONSE -> responseToResponse(ModelInferResponse.parseFrom(record.value()));
                };
            } catch (com.google.protobuf.InvalidProtocolBufferException e) {
                // flowc writes an error record here; the bench sends none.
                return;
            }
            if (out == null) return;
            Headers headers = new RecordHeaders();
            for (Header x : record.headers()) {
                String k = x.key();
                if (!k.equals(PIPELINE) && !k.equals(ALIBI_TYPE) && !k.equals(ALIBI_METHOD)) headers.add(x);
            }
            headers.add(PIPELINE, pipelineBytes);
            ctx.forward(record.withValue(out).withHeaders(headers));
        }
    }

    /** outputs → inputs: each kept output tensor becomes an input tensor; id, parameters kept. */
    static byte[] responseToRequest(ModelInferResponse r, Map<String, String> select) {
        ModelInferRequest.Builder out = ModelInferRequest.newBuilder().setId(r.getId()).putAllParameters(r.getParametersMap());
        boolean raw = r.getRawOutputContentsCount() > 0;
        if (raw && r.getRawOutputContentsCount() != r.getOutputsCount()) {
            throw new IllegalStateException("raw contents do not line up with tensors");
        }
        for (int i = 0; i < r.getOutputsCount(); i++) {
            InferOutputTensor t = r.getOutputs(i);
            String name = select == null ? t.getName() : select.get(t.getName());
            if (name == null) continue;
            InferInputTensor.Builder in = InferInputTensor.newBuilder()
                    .setName(name)
                    .setDatatype(t.getDatatype())
                    .addAllShape(t.getShapeList())
                    .putAllParameters(t.getParametersMap());
            if (t.hasContents()) in.setContents(t.getContents());
            out.addInputs(in);
            if (raw) out.addRawInputContents(r.getRawOutputContents(i));
        }
        if (out.getInputsCount() == 0) return null;
        return out.build().toByteArray();
    }

    /** inputs → inputs, all tensors: the request as it is. */
    static byte[] requestToRequest(ModelInferRequest r) {
        if (r.getInputsCount() == 0) return null;
        return r.toByteArray();
    }

    /** outputs → outputs, all tensors: the response as it is. */
    static byte[] responseToResponse(ModelInferResponse r) {
        if (r.getOutputsCount() == 0) return null;
        return r.toByteArray();
    }
}
