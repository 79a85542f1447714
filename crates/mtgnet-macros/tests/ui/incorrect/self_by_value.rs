struct Condition;

#[mtgnet_macros::service]
pub trait Math {
    async fn add(self, a: i64, b: i64) -> Result<i64, Condition>;
    async fn sub(&mut self, a: i64, b: i64) -> Result<i64, Condition>;
}

fn main() {}
