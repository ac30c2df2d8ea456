//! The test broker starts, serves its listeners and reports its connection count over JMX.

#![allow(clippy::unwrap_used)]

use std::net::TcpStream;

use test_cluster::kafka::KafkaBroker;

#[test]
fn broker_starts_and_counts_connections() {
    let broker = KafkaBroker::start();
    let before = broker.connection_count("PLAINTEXT");
    let held: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(broker.address()).unwrap())
        .collect();
    // The broker registers accepted sockets asynchronously.
    let mut during = 0;
    for _ in 0..50 {
        during = broker.connection_count("PLAINTEXT");
        if during >= before + 3 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(during, before + 3, "three raw connections must be counted");
    drop(held);
    TcpStream::connect(broker.sasl_address()).unwrap();
    TcpStream::connect(broker.tls_address()).unwrap();
}
